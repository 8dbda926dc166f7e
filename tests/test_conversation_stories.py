"""Runs the test stories in tests/conversations/ with `rasa test core` and fails on any failed story."""
import json
import subprocess
import sys

import yaml

from bot.paths import REPO_ROOT
from bot.services import child_environment

STORIES = REPO_ROOT / "tests" / "conversations"


def test_conversation_stories(assistant, model_path, test_settings, tmp_path):
    # `assistant` keeps the action server of test_settings running for action_nlu_fallback.
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "test", "core", "--stories", str(STORIES), "--model", model_path,
         "--endpoints", "endpoints.yml", "--out", str(tmp_path), "--fail-on-prediction-errors"],
        cwd=REPO_ROOT, env=child_environment(test_settings), capture_output=True, text=True, timeout=600,
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:] + details
    # Rasa evaluated every story of the file, and each one as a whole conversation came out right.
    stories = yaml.safe_load((STORIES / "test_stories.yml").read_text())["stories"]
    accuracy = json.loads((tmp_path / "story_report.json").read_text())["conversation_accuracy"]
    assert accuracy["total"] == len(stories) and accuracy["correct"] == len(stories), accuracy
