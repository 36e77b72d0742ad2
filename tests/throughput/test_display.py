"""The live panel of `orze run` shows each slot's worker, jobs and utilisation."""

from rich.console import Console

from orze.config import ProjectConfig
from orze.daemon.display import Display
from orze.daemon.node import Daemon
from orze.daemon.slots import plan_slots
from orze.layout import Layout
from orze.space import load_space
from tests.conftest import make_research_dir


def test_panel_shows_slots_and_utilisation(tmp_path):
    layout = make_research_dir(tmp_path / "r", backbones=())
    project = ProjectConfig.model_validate({"worker": {"mode": "cold"}, "scheduler": {"cpu_slots": 2}})
    daemon = Daemon(Layout.at(layout.root), project, load_space(layout.space_config), node="n",
                    slots=plan_slots(project.scheduler, gpus=[], cores=2))
    display = Display(quiet=True)
    display.attach(daemon)
    console = Console(width=200, record=True)
    console.print(display.render())
    text = console.export_text()
    assert "utilisation" in text and "idle with work queued" in text
    assert text.count("cold") >= 2 and "jobs" in text
