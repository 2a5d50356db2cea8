from django.contrib import admin
from django.urls import path

from faq import views as faq_views
from shopbot import views
from widget.chat import views as widget_views

admin.site.site_header = "ShopBot"
admin.site.site_title = "ShopBot admin"
admin.site.index_title = "Your shop's chatbot"

urlpatterns = [
    path("", views.storefront, name="storefront"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("faq/<slug:slug>/", faq_views.faq_page, name="faq-page"),
    path("widget.js", widget_views.widget_js, name="widget-js"),
    path("widget-handoff.js", widget_views.widget_handoff_js, name="widget-handoff-js"),
    path("admin/", admin.site.urls),
]
