"""Opens a page's edit view in the admin as the first superuser, as an
editor would. Wagtail records the editor's comment-notification
subscription to the page on the first visit (`wagtailcore_pagesubscription`,
a foreign key to the page), which a revert of the promotion that brought the
page must then step over.

    manage.py open_in_admin /home/about/
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test import Client
from django.test.utils import setup_test_environment
from wagtail.models import Page, PageSubscription


class Command(BaseCommand):
    help = "Open a page's admin edit view (it subscribes the editor to the page)"

    def add_arguments(self, parser):
        parser.add_argument("url_path")

    def handle(self, *args, url_path, **options):
        setup_test_environment()
        page = Page.objects.get(url_path=url_path)
        client = Client(HTTP_HOST="localhost")
        client.force_login(get_user_model().objects.filter(is_superuser=True).order_by("pk").first())
        r = client.get(f"/admin/pages/{page.pk}/edit/")
        if r.status_code != 200:
            raise CommandError(f"/admin/pages/{page.pk}/edit/ answered {r.status_code}")
        self.stdout.write(str(PageSubscription.objects.filter(page=page).count()))
