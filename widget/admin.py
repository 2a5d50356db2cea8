"""The widget's models in the admin. The ModelAdmin classes live with the owner's pages
(widget/owner/admin.py); this module only registers them."""

from django.contrib import admin

from widget.models import Conversation
from widget.owner.admin import ConversationAdmin

admin.site.register(Conversation, ConversationAdmin)

# The admin index lists each shop's dashboard and unanswered questions above the apps, unless
# the project has chosen an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "widget/admin_index.html"
