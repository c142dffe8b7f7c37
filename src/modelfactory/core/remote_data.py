"""Data in Azure storage, reached through fsspec (adlfs) with azure-identity, and the local cache of it.

Two sources read from here (sources.py registers them):

- ``blob``: an ``abfss://<container>@<account>.dfs.core.windows.net/<path>`` or ``az://<container>/<path>``
  URI (an ``az://`` URI names no account: it is ``AZURE_STORAGE_ACCOUNT_NAME``, adlfs's own variable);
- ``azureml``: a workspace data asset, whose storage location the workspace names (azureml/data_assets.py).

Either way the files are copied, a chunk at a time and hashed as they come, into
``data/cache/<kind>/...``; from there they are read like any local file. The filesystem is
``fsspec.filesystem("abfs", account_name=..., anon=False)``: adlfs then signs in with azure-identity's
DefaultAzureCredential. No key, SAS token or connection string is ever taken from params: a URI
with a query string is refused, and the secret guard refuses one in any params value before this runs.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelfactory import paths
from modelfactory.errors import DataValidationError, ParamsError

CHUNK_BYTES = 1 << 20
SUFFIXES = (".csv", ".parquet", ".pq")
PROTOCOL = "abfs"  # adlfs's one filesystem class serves abfs://, abfss:// and az://
ABFSS = re.compile(r"^abfss?://(?P<container>[^@/]+)@(?P<account>[a-z0-9]{3,24})\.(?:dfs|blob)\.core\.windows\.net"
                   r"(?P<path>/[^?#]*)?$")
AZ = re.compile(r"^az://(?P<container>[^/?#]+)(?P<path>/[^?#]*)?$")
ACCOUNT_VARIABLE = "AZURE_STORAGE_ACCOUNT_NAME"
DONE = ".complete.json"  # written last: a cache folder without it is an interrupted download


@dataclass(frozen=True)
class BlobLocation:
    """Where data sits in Azure storage: account, container, and a path, folder or glob inside it."""

    account: str
    container: str
    path: str

    @property
    def https(self) -> str:
        """The URI an Azure ML job input takes for this location (it does not take ``az://``)."""
        return f"https://{self.account}.blob.core.windows.net/{self.container}/{self.path}".rstrip("/")

    @property
    def abfss(self) -> str:
        """The location as an ``abfss://`` URI (an MLTable's paths take this form)."""
        return f"abfss://{self.container}@{self.account}.dfs.core.windows.net/{self.path}".rstrip("/")


def parse_blob_uri(uri: str, environ=None) -> BlobLocation:
    """Split an ``abfss://`` or ``az://`` URI; ParamsError naming the key for anything else.

    Args:
        uri: ``data.dataset``.
        environ: the environment (default ``os.environ``): ``AZURE_STORAGE_ACCOUNT_NAME`` is the account
            of an ``az://`` URI, which does not name one (as adlfs itself does).
    """
    environ = os.environ if environ is None else environ
    if "?" in uri or "#" in uri:
        # never echo it: what follows '?' is where a SAS token would be
        raise ParamsError("data.dataset: a blob URI takes no query string; credentials come from azure-identity "
                          "(DefaultAzureCredential), never from the URI (docs/data.md)")
    found = ABFSS.match(uri)
    if found:
        return BlobLocation(found["account"], found["container"], (found["path"] or "").strip("/"))
    found = AZ.match(uri)
    if found:
        account = environ.get(ACCOUNT_VARIABLE, "")
        if not account:
            raise ParamsError(f"data.dataset {uri}: an az:// URI does not name its storage account; export "
                              f"{ACCOUNT_VARIABLE}, or use abfss://<container>@<account>.dfs.core.windows.net/...")
        return BlobLocation(account, found["container"], (found["path"] or "").strip("/"))
    raise ParamsError(f"data.dataset '{uri}': not a blob URI; expected abfss://<container>@<account>.dfs.core."
                      "windows.net/<path> or az://<container>/<path>")


def filesystem(account: str):
    """The fsspec filesystem for one storage account: adlfs, signed in with DefaultAzureCredential.

    Tests put fsspec's memory filesystem in fsspec's registry under ``abfs``; this code stays the same.
    """
    import fsspec

    return fsspec.filesystem(PROTOCOL, account_name=account, anon=False)


def remote_files(fs, location: BlobLocation) -> list[str]:
    """The CSV and Parquet files a location names: one file, every such file in a folder, or a glob."""
    where = f"{location.container}/{location.path}".rstrip("/")
    shown = location.abfss
    try:
        if glob.has_magic(location.path):
            found = fs.glob(where)
        elif fs.isdir(where):
            found = fs.find(where)
        elif fs.exists(where):
            found = [where]
        else:
            raise DataValidationError(f"{shown}: no such file or folder (or the identity may not read it)")
    except DataValidationError:
        raise
    except Exception as exc:  # azure-core and adlfs raise many types; all mean "could not list it"
        raise DataValidationError(f"{shown}: cannot be listed ({_first_line(exc)}); the identity needs the "
                                  "Storage Blob Data Reader role on the account") from None
    files = sorted(str(f) for f in found if PurePosixPath(str(f)).suffix.lower() in SUFFIXES)
    if not files:
        raise DataValidationError(f"{shown}: no CSV or Parquet file there")
    return files


def fetch(location: BlobLocation, target: Path, immutable: bool = False) -> tuple[Path, ...]:
    """The local copies of the files at ``location``, in ``target``: downloaded now, or reused.

    With ``immutable`` (a versioned data asset), a complete copy is reused without asking storage
    anything. Otherwise the copy is reused only while each remote file's size and ETag (or
    modification time) are still those recorded when it was downloaded.
    """
    if immutable and cached_files(target):
        return cached_files(target)
    fs = filesystem(location.account)
    files = remote_files(fs, location)
    stamps = [_fingerprint(fs, f) for f in files]
    if cached_files(target) and _recorded(target) == stamps:
        return cached_files(target)
    return download(fs, files, target, base_path(location), stamps)


def download(fs, files: list[str], target: Path, base: str, stamps: list | None = None) -> tuple[Path, ...]:
    """Copy remote files into ``target`` (keeping their paths below ``base``), a chunk at a time.

    The copy goes to a staging folder renamed into place only when every file arrived, so an
    interrupted download never passes for a complete one. Returns the local files, sorted.
    """
    staging = target.with_name(f".incoming-{target.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    copied = []
    try:
        for remote in files:
            relative = PurePosixPath(_relative(remote, base))
            local = staging / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with fs.open(remote, "rb") as src, open(local, "wb") as dst:
                while block := src.read(CHUNK_BYTES):
                    digest.update(block)
                    dst.write(block)
            copied.append({"file": relative.as_posix(), "sha256": digest.hexdigest()})
        (staging / DONE).write_text(json.dumps({"files": copied, "remote": stamps or []}, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    except DataValidationError:
        raise
    except Exception as exc:
        raise DataValidationError(f"{base}: download failed ({_first_line(exc)})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached_files(target)


def cached_files(folder: Path) -> tuple[Path, ...]:
    """The data files of a complete cache folder; empty when it is absent or was interrupted."""
    if not (folder / DONE).is_file():
        return ()
    listed = json.loads((folder / DONE).read_text())["files"]
    return tuple(sorted(folder / item["file"] for item in listed))


def _recorded(folder: Path) -> list:
    return json.loads((folder / DONE).read_text()).get("remote") or []


def _fingerprint(fs, remote: str) -> list:
    """What says a remote file is unchanged without reading it: its path, size and ETag (or time)."""
    info = fs.info(remote)
    stamp = info.get("etag") or info.get("last_modified") or info.get("LastModified") or info.get("created")
    return [str(remote), info.get("size"), str(stamp) if stamp is not None else None]


def base_path(location: BlobLocation) -> str:
    """The folder that local copies keep their paths below: the fixed part of a glob, else the path."""
    parts = PurePosixPath(location.path).parts
    fixed = [p for p in parts[:next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]]
    return "/".join([location.container, *fixed])


def mounted_files(mount: Path, dataset_glob: str | None = None) -> tuple[Path, ...]:
    """The CSV and Parquet files of an Azure ML job input as the step sees it: a file (uri_file), a
    folder (uri_folder), or a folder holding an ``MLTable`` file whose paths are relative to it.

    ``dataset_glob`` is the last part of a ``file`` source's glob (``2026-*.csv``): the job mounts
    the glob's folder, and only the files it matches are read.
    """
    if mount.is_file():
        return (mount,)
    if not mount.is_dir():
        raise DataValidationError(f"MODELFACTORY_DATA_INPUT {mount}: the job input is not mounted there")
    if (mount / "MLTable").is_file():
        return _mltable_files(mount)
    pattern = dataset_glob or "*"
    found = tuple(sorted(p for p in mount.rglob(pattern) if p.is_file() and p.suffix.lower() in SUFFIXES))
    if not found:
        raise DataValidationError(f"MODELFACTORY_DATA_INPUT {mount}: the job input holds no CSV or Parquet file")
    return found


def _mltable_files(folder: Path) -> tuple[Path, ...]:
    """The local files an MLTable's ``paths`` name (file, folder or pattern, relative to its folder)."""
    import yaml

    spec = yaml.safe_load((folder / "MLTable").read_text()) or {}
    found: list[Path] = []
    for entry in spec.get("paths") or []:
        kind, value = next(iter(entry.items()))
        if "://" in str(value):
            raise DataValidationError(f"{folder / 'MLTable'}: path {value} is not inside the mounted folder; "
                                      "the step reads only what the job input mounts")
        where = (folder / str(value)).resolve()
        if kind == "file":
            found.append(where)
        elif kind == "folder":
            found += [p for p in where.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES]
        elif kind == "pattern":
            found += [Path(p) for p in glob.glob(str(folder / str(value)), recursive=True)]
    files = tuple(sorted(p for p in found if p.suffix.lower() in SUFFIXES))
    if not files:
        raise DataValidationError(f"{folder / 'MLTable'}: its paths name no CSV or Parquet file")
    return files


def cache_dir(*parts: str) -> Path:
    """A folder of the download cache: ``data/cache/<parts>`` (``MODELFACTORY_DATA_CACHE_DIR`` moves it)."""
    return paths.data_cache_dir().joinpath(*(_safe(p) for p in parts))


def _safe(part: str) -> str:
    """A path part that cannot climb out of the cache (an asset name or version comes from params)."""
    cleaned = re.sub(r"[^A-Za-z0-9._@-]+", "_", str(part)).strip(".")
    return cleaned or "_"


def _relative(remote: str, base: str) -> str:
    remote, base = remote.lstrip("/"), base.strip("/")
    if remote == base:
        return PurePosixPath(remote).name
    return remote[len(base) + 1:] if remote.startswith(base + "/") else PurePosixPath(remote).name


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
