"""Questions customers ask the demo shop (faq/demo), for the load test and the tests that ask
several at once: five its FAQ answers, then one off-topic (the fallback)."""

DEMO_QUESTIONS = [
    "Do you deliver to Princeton?",
    "What are your opening hours?",
    "Do you sell gift cards?",
    "Can I choose a delivery time?",
    "How long do your flowers last?",
    "Can you recommend a good car mechanic?",  # off-topic: the fallback
]
