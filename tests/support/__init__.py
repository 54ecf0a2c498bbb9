"""What tests share: helpers and factories, the suite's audit plugins (problem+json answers,
query plans, shard plan, work budgets) and their allow-lists. Test modules import from here,
never from each other (tests/test_suite_rules.py); fixtures live in tests/conftest.py and
resource factories in tests/factories.py.
"""
