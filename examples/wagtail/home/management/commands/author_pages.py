"""Authors the example's content with Wagtail's own ORM, as an editor would.

    manage.py author_pages staging     # several pages, published, with revisions
    manage.py author_pages production  # production's own page

In staging the users are created in another order than in production, so
user ids differ. The first page under Home is "Careers" in staging and
"Prod promo" in production: created independently, they get the same id and
the same tree path.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from home.models import ArticlePage, HomePage


def body(*paragraphs):
    return [("heading", paragraphs[0])] + [("paragraph", f"<p>{p}</p>") for p in paragraphs[1:]]


class Command(BaseCommand):
    help = "Author the example pages of one environment"

    def add_arguments(self, parser):
        parser.add_argument("environment", choices=["staging", "production"])

    def handle(self, *args, environment, **options):
        User = get_user_model()
        if environment == "staging":
            User.objects.create_user("editor", "editor@example.com", "editor")
        admin = User.objects.create_superuser("admin", "admin@example.com", "admin")
        home = HomePage.objects.get(url_path="/home/")

        def add(parent, title, slug, paragraphs, publish=True):
            page = ArticlePage(title=title, slug=slug, live=publish, summary=f"<p>{title} summary</p>", body=body(*paragraphs), owner=admin)
            parent.add_child(instance=page)
            revision = page.save_revision(user=admin)
            if publish:
                revision.publish(user=admin)
            return ArticlePage.objects.get(pk=page.pk)

        if environment == "production":
            promo = add(home, "Prod promo", "prod-promo", ["Only in production"])
            # Published twice: production's revision ids run ahead of staging's.
            promo.body = body("Only in production", "Written by production's editors.")
            promo.save_revision(user=admin).publish(user=admin)
            return

        add(home, "Careers", "careers", ["Join us", "We are hiring."])
        about = add(home, "About us", "about", ["Who we are", "A small team."])
        # A second revision, published: the live revision is not the first.
        about.title = "About the team"
        about.body = body("Who we are", "A small team.", "Founded in 2020.")
        about.save_revision(user=admin).publish(user=admin)
        news = add(home, "News", "news", ["Latest news"])
        add(news, "Launch day", "launch-day", ["We launched", "It went well."])
        pricing = add(home, "Pricing", "pricing", ["Prices", "Cheap."])
        # Published, then edited as a draft: the admin shows the draft.
        pricing = ArticlePage.objects.get(pk=pricing.pk)
        pricing.title = "Pricing (draft)"
        pricing.save_revision(user=admin)
        add(home, "Upcoming", "upcoming", ["Not yet"], publish=False)
        # Home itself edited and published.
        home.intro = "<p>Welcome to the staging-authored site.</p>"
        home.save_revision(user=admin).publish(user=admin)
