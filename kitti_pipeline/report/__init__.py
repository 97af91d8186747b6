"""The study's tables, figures and report, rebuilt from the metrics and plots files alone.

Tables 1, 4, 5 and 6 (`tables`), the report's own figures (`figures`) and the Markdown and HTML
report (`document`). Modules here import `core`, `data` and each other: they read what the
studies wrote, never the studies' code.
"""
