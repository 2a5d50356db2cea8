"""
The test and benchmark harness: what tests/ and bench/ (and `manage.py bench_chat`) use to run the
real chat server and drive it. Not part of the product: nothing in faq/, widget/, owner/, lib/ or
shopbot/ imports it (tests/test_layers.py checks), except the benchmark command bench_chat.
"""
