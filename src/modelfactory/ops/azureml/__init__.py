"""Azure ML: the same pipeline definitions as pipeline jobs, workspace connection, endpoints, schedules.

Everything here imports azure-ai-ml inside its functions; the CLI imports this package only for
the Azure commands (submit, jobs, endpoint), so local commands never pay for it.
"""
