"""
Every model the owner manages, registered with the admin: shops and their FAQ (knowledge),
conversations and hand-offs (the chat). The ModelAdmin classes are in owner/shops.py,
owner/entries.py, owner/conversations.py and owner/handoffs.py.
"""

from django.contrib import admin

from faq.models import FAQEntry, Shop
from owner.conversations import ConversationAdmin
from owner.entries import FAQEntryAdmin
from owner.handoffs import HandoffAdmin
from owner.shops import ShopAdmin
from widget.models import Conversation, Handoff

admin.site.register(Shop, ShopAdmin)
admin.site.register(FAQEntry, FAQEntryAdmin)
admin.site.register(Conversation, ConversationAdmin)
admin.site.register(Handoff, HandoffAdmin)

# The admin index lists each shop's dashboard and unanswered questions above the apps, unless
# the project has chosen an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "owner/admin_index.html"
