"""Stage 3a: the effective-dated price catalog and the cost of every usage record.

catalog.py   genai-prices (+ the user's overrides) -> price rows valid over [valid_from, valid_to)
resolve.py   a model name as sent (`openai/gpt-4o`, `claude-3-5-sonnet-20241022`) -> a catalog entry
cost.py      usage x resolved prices -> exact Decimal cost per record (polars expressions)
"""
