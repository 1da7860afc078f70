"""What each tier costs, per 1,000 requests and per month at `decision.monthly_requests`.

- LLM tier (an endpoint, logged answers): real token usage x the price table (baselines/pricing.py).
- Local tiers (the SLM, a local baseline): a dedicated box from the hardware profile (configs/hardware/),
  USD/hour / throughput. Per 1k requests is the cost at full use; per month is what the boxes cost at the
  projected volume: max(1, ceil(volume / one box's monthly capacity)) boxes, running all month.
- Break-even: the monthly volume at which one dedicated SLM box costs what the LLM would.
"""

from __future__ import annotations

import math

from slmtier.config import HardwareConfig

HOURS_PER_MONTH = 730


def price_local(hardware: HardwareConfig, measured_requests_per_s: float | None) -> dict:
    """Cost of a local tier on `hardware`, from its declared throughput or the one this run measured."""
    declared = hardware.requests_per_s is not None
    rps = hardware.requests_per_s if declared else measured_requests_per_s
    if not rps:
        return {"usd_per_1k": None, "requests_per_s": None, "basis": f"no throughput for {hardware.name}"}
    source = "declared" if declared else "measured in this run"
    return {
        "usd_per_1k": 1000 * hardware.usd_per_hour / (3600 * rps),
        "requests_per_s": rps,
        "basis": f"{hardware.name} at {hardware.usd_per_hour:g} USD/h, {rps:.2f} requests/s ({source})",
    }


def monthly_local(hardware: HardwareConfig, requests_per_s: float, volume: int) -> dict:
    """Dedicated boxes for `volume` requests a month (at least one)."""
    capacity = requests_per_s * 3600 * HOURS_PER_MONTH
    boxes = max(1, math.ceil(volume / capacity))
    return {"boxes": boxes, "capacity_per_box": capacity, "usd": boxes * hardware.usd_per_hour * HOURS_PER_MONTH}


def project_month(
    *, local: dict, llm: dict, llm_is_local: bool, hardware: HardwareConfig, volume: int, cascade_rate: float | None
) -> dict:
    """The monthly projection: a local tier's boxes (`local`) vs the LLM bill (and the cascade's: boxes +
    escalated LLM calls). `local`/`llm`: the tiers' cost entries (per_1k_requests_usd, and requests_per_s for
    local tiers). A local baseline is priced like a local tier, as dedicated boxes; then there is no
    per-request break-even."""
    box_month = hardware.usd_per_hour * HOURS_PER_MONTH
    result: dict = {"monthly_requests": volume, "box_usd_per_month": box_month, "local": None, "llm_usd": None}
    if local.get("requests_per_s"):
        result["local"] = monthly_local(hardware, local["requests_per_s"], volume)
    llm_per_1k = llm.get("per_1k_requests_usd")
    if llm_is_local and llm.get("requests_per_s"):
        result["llm_usd"] = monthly_local(hardware, llm["requests_per_s"], volume)["usd"]
    elif not llm_is_local and llm_per_1k is not None:
        result["llm_usd"] = volume * llm_per_1k / 1000
    if result["local"] and result["llm_usd"] is not None:
        result["saving_usd"] = result["llm_usd"] - result["local"]["usd"]
        result["saving_pct"] = result["saving_usd"] / result["llm_usd"] if result["llm_usd"] else None
        if not llm_is_local and llm_per_1k:
            result["break_even_monthly_requests"] = math.ceil(box_month / (llm_per_1k / 1000))
        if cascade_rate is not None:
            result["cascade_usd"] = result["local"]["usd"] + cascade_rate * volume * (llm_per_1k or 0) / 1000
    return result
