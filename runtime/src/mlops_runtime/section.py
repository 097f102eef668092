"""The base of every params.yaml section: an unknown key is an error (a typo is not silently ignored), values are
read-only once loaded."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
