"""
The owner's pages, all inside Django's admin: the shop's settings and FAQ, trying a question,
importing, the dashboard, the unanswered questions, conversations and the hand-offs to a person.
The top layer of the product: it imports the chat (widget) and the knowledge (faq); nothing
imports it. It has no models of its own.
"""
