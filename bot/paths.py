"""Where the project's files live (resolved from the repository root, not the working directory). `data/` holds
only what Rasa trains on (stock `rasa train` and `rasa data validate` work on it); everything else the assistant
reads is under `resources/`."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
FAQ_DIR = DATA_DIR / "faq"
NLU_DIR = DATA_DIR / "nlu"
RESOURCES_DIR = REPO_ROOT / "resources"
LEXICON_DIR = RESOURCES_DIR / "lexicon"       # read by the NLU components: a training input too
TESTS_NLU_DIR = REPO_ROOT / "tests" / "nlu"              # the development set (tuned on)
FROZEN_NLU_DIR = REPO_ROOT / "tests" / "nlu_test"        # the frozen test set (reported, never tuned on)
VAR_DIR = REPO_ROOT / "var"
