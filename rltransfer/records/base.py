"""What every record shares: unknown fields refused, written back without the fields it never held, and
a validation error said as its first problem."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without the fields the record never held (so reading and writing a file back
        changes none of its bytes)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


def first_problem(err: ValidationError) -> str:
    """``where: what`` of a validation error's first problem (``where``: the field's dotted path)."""
    first = err.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or '(top level)'}: {first['msg']}"
