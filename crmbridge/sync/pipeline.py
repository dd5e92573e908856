"""Pipelines: a marketing connector, a sales connector, the lead definition and a schedule.

One pipeline comes from the settings (``CRMBRIDGE_PIPELINE__*``); several come from a folder of env
files (``CRMBRIDGE_PIPELINES_DIR``), one per pipeline, each read on top of the base env files so a
pipeline only states what differs (its name, its connectors' credentials).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crmbridge.errors import ConfigurationError
from crmbridge.settings import PipelineSettings, Settings, load_settings


@dataclass(frozen=True)
class Pipeline:
    """One pipeline and the settings it runs with."""

    settings: Settings

    @property
    def config(self) -> PipelineSettings:
        return self.settings.pipeline

    @property
    def name(self) -> str:
        return self.settings.pipeline.name

    @property
    def marketing(self) -> str:
        return self.settings.pipeline.marketing

    @property
    def sales(self) -> str:
        return self.settings.pipeline.sales


def load_pipelines(settings: Settings) -> list[Pipeline]:
    """The pipelines to run: one per env file in ``pipelines_dir``, or the settings' own one."""
    folder = settings.pipelines_dir
    if folder is None:
        return [Pipeline(settings)]
    if not folder.is_dir():
        raise ConfigurationError(
            f"CRMBRIDGE_PIPELINES_DIR {folder} is not a folder",
            hint="point it at a folder holding one .env file per pipeline",
        )
    files = sorted(Path(folder).glob("*.env"))
    if not files:
        raise ConfigurationError(f"CRMBRIDGE_PIPELINES_DIR {folder} holds no *.env files")
    pipelines = []
    names: dict[str, Path] = {}
    for file in files:
        pipeline_settings = load_settings([*settings.env_files, file])
        name = pipeline_settings.pipeline.name
        if name == "default":
            name = file.stem
            named = {**pipeline_settings.pipeline.model_dump(), "name": name}
            pipeline_settings = load_settings([*settings.env_files, file], pipeline=named)
        if name in names:
            raise ConfigurationError(
                f"pipeline name {name!r} is used by both {names[name]} and {file}",
                hint="set a different CRMBRIDGE_PIPELINE__NAME in one of them",
            )
        names[name] = file
        pipelines.append(Pipeline(pipeline_settings))
    return pipelines
