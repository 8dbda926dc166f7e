"""KSOS support assistant: business rules, language handling, knowledge base and CLI."""
