from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static

from faq import embedding
from faq.models import Shop
from lib.web import site_url


def storefront(request: HttpRequest) -> HttpResponse:
    """The demo shop's home page, embedding the chat exactly as a real shop's site would."""
    shop = Shop.objects.filter(is_demo=True).first()
    site = site_url(request)
    snippet = shop.embed_snippet(site) if shop else ""
    return render(request, "storefront.html", {"shop": shop, "embed_snippet": snippet})


def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and uptime checks: 200 when this process can answer customers, that is
    when the database answers and the embedding model is loaded. A server's first seconds go to
    loading the model (and on its first start to exporting the ONNX file): a balancer that waits
    for 200 sends it no customer who would wait for that."""
    if not embedding.is_ready():
        return HttpResponse("loading the embedding model", status=503, content_type="text/plain")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return HttpResponse("OK", content_type="text/plain")


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask every site for /favicon.ico: the chat bubble (static/favicon.svg), instead of
    a 404 in the console of every page."""
    return redirect(static("favicon.svg"))
