"""Asks Wagtail itself what the site looks like, as JSON on stdout.

For every page: its title, whether it is live, its URL's status and whether
the served HTML holds the title, and the status of its admin edit page
(logged in as a superuser), plus the title the edit form shows (the latest
revision's for a page with unpublished changes). `fixtree` problems are
counted as treebeard's `find_problems` (what `fixtree` checks) finds them,
without fixing anything.
"""

import json

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test import Client
from django.test.utils import setup_test_environment
from wagtail.models import Page, Revision


class Command(BaseCommand):
    help = "Report pages, URLs, admin edit pages and tree problems as JSON"

    def handle(self, *args, **options):
        # Asking writes nothing: the admin's edit view subscribes the user
        # to the page (a row referencing it), so everything is rolled back.
        with transaction.atomic():
            report = self.report()
            transaction.set_rollback(True)
        self.stdout.write(json.dumps(report, indent=1, sort_keys=True))

    def report(self):
        setup_test_environment()
        client = Client(HTTP_HOST="localhost")
        admin_client = Client(HTTP_HOST="localhost")
        admin_client.force_login(get_user_model().objects.filter(is_superuser=True).order_by("pk").first())
        pages = []
        for page in Page.objects.filter(depth__gt=1).order_by("path"):
            specific = page.specific
            entry = {
                "id": page.pk,
                "title": page.title,
                "url_path": page.url_path,
                "type": f"{page.content_type.app_label}.{page.content_type.model}",
                "specific": type(specific).__name__,
                "live": page.live,
                "has_unpublished_changes": page.has_unpublished_changes,
                "revisions": page.revisions.count(),
            }
            if page.live:
                r = client.get(page.url)
                html = r.content.decode("utf-8", "replace")
                entry["url"] = page.url
                entry["status"] = r.status_code
                entry["title_served"] = f"<h1>{page.title}</h1>" in html
            r = admin_client.get(f"/admin/pages/{page.pk}/edit/")
            entry["admin_status"] = r.status_code
            if r.status_code == 200:
                latest = page.get_latest_revision_as_object()
                entry["admin_title"] = latest.title
                entry["admin_shows_title"] = f'value="{latest.title}"' in r.content.decode("utf-8", "replace")
            pages.append(entry)
        # Every page revision belongs to an existing page, and the ids inside
        # its content name that page, its content type and its locale.
        revision_problems = []
        for revision in Revision.page_revisions.order_by("pk"):
            page = Page.objects.filter(pk=revision.object_id).first()
            content = revision.content
            if page is None:
                revision_problems.append(f"revision {revision.pk}: page {revision.object_id} does not exist")
                continue
            if str(content.get("pk")) != str(page.pk):
                revision_problems.append(f"revision {revision.pk}: content pk {content.get('pk')} is not page {page.pk}")
            if content.get("content_type") != page.content_type_id:
                revision_problems.append(
                    f"revision {revision.pk}: content_type {content.get('content_type')} is not page {page.pk}'s {page.content_type_id}"
                )
            if content.get("locale") != page.locale_id:
                revision_problems.append(f"revision {revision.pk}: locale {content.get('locale')} is not {page.locale_id}")
            if content.get("url_path") != page.url_path:
                revision_problems.append(f"revision {revision.pk}: url_path {content.get('url_path')} is not {page.url_path}")
            for field in ("live_revision", "latest_revision"):
                named = content.get(field)
                other = Revision.objects.filter(pk=named).first() if named is not None else None
                if named is not None and (other is None or str(other.object_id) != str(page.pk)):
                    revision_problems.append(f"revision {revision.pk}: {field} {named} is not a revision of page {page.pk}")
            # Wagtail rebuilds the page from it: it must load.
            revision.as_object()
        problems = Page.find_problems()
        report = {
            "root_id": Page.objects.get(depth=1).pk,
            "content_types": {
                f"{ct.app_label}.{ct.model}": ct.pk
                for ct in ContentType.objects.filter(app_label__in=["home", "wagtailcore"])
            },
            "live": sorted(p.title for p in Page.objects.live().filter(depth__gt=1)),
            "pages": pages,
            "revision_problems": revision_problems,
            "revisions": Revision.page_revisions.count(),
            "tree_problems": {
                "bad_alpha": len(problems[0]),
                "bad_path": len(problems[1]),
                "orphans": len(problems[2]),
                "bad_depth": len(problems[3]),
                "bad_numchild": len(problems[4]),
            },
        }
        return report
