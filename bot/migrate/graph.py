"""The Alembic side of the house: its Config, the revision scripts, and the options env.py applies."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from bot.settings import Config

# Tables the toolkit owns; they are not the bot's schema, so autogenerate must never see them as drift.
TOOLKIT_TABLES = frozenset({"alembic_version", "toolkit_journal", "toolkit_journal_schema"})


def alembic_config(config: Config, **attributes: Any) -> AlembicConfig:
    """An Alembic Config for our ini, carrying the toolkit's Config (and a connection) to env.py."""
    # quiet: Alembic's own "Generating …" status text would land on stdout, which is for results. x: what
    # `alembic -x key=value` gives revisions through context.get_x_argument(), here from the task's -x flags.
    alembic_cfg = AlembicConfig(str(config.alembic_ini), cmd_opts=Namespace(quiet=True, x=list(config.x_arguments)))
    alembic_cfg.attributes["toolkit_config"] = config
    alembic_cfg.attributes.update(attributes)
    return alembic_cfg


def load_scripts(alembic_cfg: AlembicConfig) -> ScriptDirectory:
    """The revision scripts under alembic/versions."""
    return ScriptDirectory.from_config(alembic_cfg)


def include_name(name: str | None, type_: str, _parent_names: dict[str, Any]) -> bool:
    """Autogenerate filter: the toolkit's own tables are not the bot's schema."""
    return not (type_ == "table" and name in TOOLKIT_TABLES)


def context_options(backend: str, *, online: bool) -> dict[str, Any]:
    """Options for context.configure() that every run shares, the toolkit's and plain alembic's alike."""
    from bot.data.models import Base

    options: dict[str, Any] = {
        "target_metadata": Base.metadata,
        "include_name": include_name,
        "compare_type": True,
        "transaction_per_migration": True,
        "render_as_batch": backend == "sqlite",
    }
    if backend == "sqlite" and online:
        # Our engines run SQLite in SQLAlchemy's transactional-DDL recipe; tell Alembic to use it.
        options["transactional_ddl"] = True
    return options
