"""What an LLM answer cost: token counts times a price table kept as data (configs/pricing/)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from slmtier.config import EndpointConfig, PricingConfig

# Suffixes that name a dated snapshot of a listed model, not a different (differently priced) model.
SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True)
class Price:
    input_per_1m: float
    output_per_1m: float
    entry: str  # the table entry (or "override") the price came from
    as_of: str

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1_000_000

    def to_dict(self) -> dict:
        return {
            "input_per_1m": self.input_per_1m,
            "output_per_1m": self.output_per_1m,
            "entry": self.entry,
            "as_of": self.as_of,
        }


def find_price(model: str, table: PricingConfig) -> Price | None:
    """The table's price for a model id: its exact entry or the entry it extends by a snapshot suffix."""
    name = model.rsplit("/", 1)[-1].lower()  # "openai/gpt-4o" (gateway style) -> "gpt-4o"
    entries = {key.lower(): (key, price) for key, price in table.models.items()}
    candidates = [name, SNAPSHOT_SUFFIX.sub("", name)]
    for candidate in candidates:
        if candidate in entries:
            key, price = entries[candidate]
            return Price(price.input_per_1m, price.output_per_1m, key, table.as_of)
    return None


def resolve_endpoint_price(endpoint: EndpointConfig, table: PricingConfig) -> Price | None:
    """The endpoint's own override if set, else the table's entry for price_model (or the model)."""
    if endpoint.price_input_per_1m is not None and endpoint.price_output_per_1m is not None:
        return Price(endpoint.price_input_per_1m, endpoint.price_output_per_1m, "override", "set in config")
    return find_price(endpoint.price_model or endpoint.model, table)
