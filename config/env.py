"""Dataclasses of the pure packages filled from the environment, in the entry points: the rules
declare their numbers with defaults and never read the environment themselves."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from pydantic import create_model
from pydantic_settings import BaseSettings, SettingsConfigDict

T = TypeVar("T")


class _Env(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)


def dataclass_from_env(cls: type[T], prefix: str) -> T:
    """`cls()` with every field overridden by ``<prefix><FIELD>`` where set (case-insensitive;
    tuples as JSON), validated as pydantic-settings does."""
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(cls)}
    model = create_model(f"{cls.__name__}FromEnv", __base__=_Env, **fields)
    return cls(**model(_env_prefix=prefix).model_dump())  # type: ignore[call-arg]
