"""`python -m bot accounts ...` as an operator runs it."""
import json
import os
import subprocess
import sys
import time

import pytest

from bot.accounts.verification import verify_identity_token
from bot.paths import REPO_ROOT

pytestmark = pytest.mark.integration


def bot(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bot", "accounts", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_seed_demo_once_then_import_all_or_nothing(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SECRETS_FILE": str(tmp_path / "secrets.env")}
    first = bot("seed-demo", "--if-empty", env_extra=env)
    assert first.returncode == 0 and "Loaded 5 demo accounts" in first.stdout
    assert "1000000003  suspended" in first.stdout
    again = bot("seed-demo", "--if-empty", env_extra=env)
    assert "already has 5 account(s)" in again.stdout

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"account_number": "123"}], indent=2))
    result = bot("import", str(bad), env_extra=env)
    assert result.returncode == 1 and "nothing imported" in result.stderr
    assert "line 2: account_number '123'" in result.stderr

    good = tmp_path / "good.json"
    good.write_text(json.dumps([{
        "account_number": f"20{i:08d}", "business_name": f"Kedai {i}", "registration_type": "brn",
        "registration_id": f"2026{i:08d}", "email": f"k{i}@kedai.my", "phone": "+60123456789",
        "subscriptions": [{"plan": "Starter", "start_date": "2026-01-01"}]} for i in range(150)]))
    result = bot("import", str(good), env_extra=env)
    assert result.returncode == 0 and "Imported 150 account(s)" in result.stdout
    assert "imported 150/150 (100%)" in result.stderr                     # progress for large files
    assert bot("import", str(tmp_path / "missing.csv"), env_extra=env).returncode == 2


def test_token_needs_the_secret(tmp_path):
    assert bot("token", "1000000001", env_extra={"IDENTITY_TOKEN_SECRET": ""}).returncode == 2
    result = bot("token", "1000000001", "--minutes", "5", env_extra={"IDENTITY_TOKEN_SECRET": "cli-secret"})
    token = result.stdout.strip()
    assert verify_identity_token(token, "cli-secret", time.time()) == "1000000001"
    assert verify_identity_token(token, "cli-secret", time.time() + 301) is None
