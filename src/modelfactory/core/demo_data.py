"""The partitioned demo's data: daily unit sales per store and product, made by a seeded generator.

One row per store, product and day: the day's price, whether the product was on promotion, whether
the day was a public holiday, and the units sold (the regression target). Each store and product
has its own base demand, weekly pattern, price sensitivity and promotion lift, so one model per
partition is the right shape. A few pairs were listed late and have fewer rows than the model's
``data.checks.min_rows``: the runner skips those and says so. The same seed gives the same bytes.

``make demo-data`` writes it with ``python -m modelfactory.core.demo_data FILE`` and registers it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

STORES = (1, 2, 3, 4)
PRODUCTS = ("A", "B", "C", "D", "E", "F")
DAYS = 730                       # two years of daily rows per partition
LATE_LISTINGS = {(4, "E"): 60, (4, "F"): 45}   # (store, product): days on sale; fewer than min_rows
HOLIDAYS = ((1, 1), (5, 1), (7, 4), (12, 25), (12, 26), (12, 31))   # (month, day)
START = "2024-01-01"
SEED = 7


def generate_sales(seed: int = SEED) -> pd.DataFrame:
    """Daily sales of every store and product, deterministic for a given seed.

    Returns:
        Columns store, product, day (days since the first), day_of_week, month, price, promo,
        holiday and units (the target), one row per store, product and day on sale.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range(START, periods=DAYS, freq="D")
    holiday = np.array([(d.month, d.day) in HOLIDAYS for d in dates])
    frames = []
    for store in STORES:
        for product in PRODUCTS:
            base = rng.uniform(20, 80)
            weekly = rng.uniform(-0.3, 0.4, size=7)        # each pair's own week (weekends differ by store)
            elasticity = rng.uniform(0.8, 2.0)
            lift = rng.uniform(0.2, 0.9)
            list_price = rng.uniform(2, 12)
            price = np.round(list_price * rng.choice([1.0, 0.9, 1.1], size=DAYS, p=[0.7, 0.2, 0.1]), 2)
            promo = rng.random(DAYS) < 0.12
            trend = 1 + rng.uniform(-0.1, 0.3) * np.arange(DAYS) / DAYS
            season = 1 + 0.15 * np.sin(2 * np.pi * dates.dayofyear.to_numpy() / 365.25)
            mean = (base * trend * season * (1 + weekly[dates.dayofweek]) * (price / list_price) ** -elasticity
                    * (1 + lift * promo) * np.where(holiday, 0.4, 1.0))
            frame = pd.DataFrame({
                "store": store, "product": product, "day": np.arange(DAYS),
                "day_of_week": dates.dayofweek, "month": dates.month, "price": price,
                "promo": promo.astype(int), "holiday": holiday.astype(int),
                "units": rng.poisson(mean).astype(float),
            })
            frames.append(frame.tail(LATE_LISTINGS.get((store, product), DAYS)))
    return pd.concat(frames, ignore_index=True)


def write_sales(path: Path, seed: int = SEED) -> Path:
    """Write the demo's sales to ``path`` (.parquet or .csv, by its suffix); return the path."""
    frame = generate_sales(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


if __name__ == "__main__":
    print(write_sales(Path(sys.argv[1] if len(sys.argv) > 1 else "data/landing/sales.parquet")))
