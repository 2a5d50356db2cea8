"""The widget's models in the admin. The ModelAdmin classes live with the owner's pages
(widget/owner/admin.py); this module only registers them."""

from django.contrib import admin

from widget.models import Conversation, Handoff
from widget.owner.admin import ConversationAdmin
from widget.owner.requests import HandoffAdmin

admin.site.register(Conversation, ConversationAdmin)
admin.site.register(Handoff, HandoffAdmin)

# The admin index lists each shop's dashboard and unanswered questions above the apps, unless
# the project has chosen an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "widget/admin_index.html"
