"""What a reader sees: :mod:`.plots` (every figure), :mod:`.tables` (every table, in text and
Markdown) and :mod:`.outputs` (the folder of files ``backfill demo`` writes). Each reads the
``results.json`` dictionary; a method's colour, line and label come from the registry."""
