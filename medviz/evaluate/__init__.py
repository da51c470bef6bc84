"""``python -m medviz.evaluate --model NAME [--json] [--data DIR] [--split test] ...``"""
