"""What Rasa trains and runs on every message: the custom components (components.py, named in config.yml), text
normalisation (text.py), language detection (language.py) and input checks (input_check.py). Light on purpose:
the gateway imports language.py without Rasa."""
