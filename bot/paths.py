"""Where the project's data files live (resolved from the repository root, not the working directory)."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
FAQ_DIR = DATA_DIR / "faq"
NLU_DIR = DATA_DIR / "nlu"
LEXICON_DIR = DATA_DIR / "lexicon"
TESTS_NLU_DIR = REPO_ROOT / "tests" / "nlu"
VAR_DIR = REPO_ROOT / "var"
