"""Deterministic, realistic and messy demo leads for the sandbox emulators.

Real lead data is messy: the same person typed twice with different case and stray spaces, emails
that are not emails, a company left blank, names in Arabic and Hebrew and Japanese, a job title
pasted three times over. :func:`generate` yields such leads, the same ones for the same seed, fast
enough for a million (Faker fills small pools once; a seeded generator combines them).

The leads are vendor-neutral; each emulator turns them into its own records (``in_marketing`` and
``in_sales`` say which systems already hold a lead).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from faker import Faker

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_MX", "pt_BR", "ja_JP", "ar_SA", "he_IL", "nl_NL")
COUNTRY_OF_LOCALE = {
    "en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_MX": "MX",
    "pt_BR": "BR", "ja_JP": "JP", "ar_SA": "SA", "he_IL": "IL", "nl_NL": "NL",
}  # fmt: skip
LOCALE_WEIGHTS = (40, 8, 10, 8, 6, 6, 5, 5, 4, 8)
INDUSTRIES = (
    "Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Education",
    "Government", "Media", "Telecommunications", "Logistics", "Non-profit",
)  # fmt: skip
SENIOR_TITLES = (
    "VP of Marketing", "Head of Sales", "Director of IT", "Chief Technology Officer",
    "VP Engineering", "Head of Revenue Operations", "Director, Demand Generation", "CFO",
)  # fmt: skip
SOURCES = (
    ("demo_request", 8), ("content_download", 22), ("webinar", 15), ("trade_show", 10),
    ("organic", 25), ("paid", 12), ("referral", 8),
)  # fmt: skip
STAGES = (
    ("subscriber", 24), ("lead", 34), ("mql", 12), ("sal", 8), ("sql", 6),
    ("opportunity", 6), ("customer", 5), ("recycled", 3), ("disqualified", 2),
)  # fmt: skip
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "gmx.de", "web.de")
INVALID_EMAILS = (
    "{u}@", "{u}@@{d}", "{u} at {d}", "{u}@{d}..com", "@{d}", "{u}@localhost", "{u}.{d}",
)  # fmt: skip
OPPORTUNITY_OPEN = ("Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote")
POOL = 400
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DemoOpportunity:
    """An opportunity sales opened for a converted lead."""

    name: str
    stage_name: str
    amount: float
    close_date: str
    is_closed: bool
    is_won: bool


@dataclass(frozen=True, slots=True)
class DemoLead:
    """One person as the demo knows them, before any system has mangled them.

    ``stage`` is the shared lead definition's stage the lead is at; ``sales_status`` is the
    Salesforce Lead Status when the lead is also in sales; ``mess`` names what was made messy on
    purpose (``"email_case"``, ``"invalid_email"``, ``"missing_company"``, ``"rtl_name"``,
    ``"long_value"``, ``"duplicate"``), so tests can find each kind.
    """

    key: int
    first_name: str
    last_name: str
    email: str
    company: str | None
    job_title: str | None
    phone: str | None
    country: str
    city: str
    employees: int | None
    industry: str | None
    website: str | None
    lead_source: str
    stage: str
    page_views: int
    email_opens: int
    email_clicks: int
    form_submissions: int
    created_at: datetime
    updated_at: datetime
    in_marketing: bool
    in_sales: bool
    sales_status: str | None = None
    converted: bool = False
    opportunity: DemoOpportunity | None = None
    duplicate_of: int | None = None
    mess: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Pools:
    first: dict[str, tuple[str, ...]]
    last: dict[str, tuple[str, ...]]
    company: dict[str, tuple[str, ...]]
    city: dict[str, tuple[str, ...]]
    job: tuple[str, ...]
    phone: dict[str, tuple[str, ...]]


@cache
def _pools(seed: int) -> _Pools:
    first: dict[str, tuple[str, ...]] = {}
    last: dict[str, tuple[str, ...]] = {}
    company: dict[str, tuple[str, ...]] = {}
    city: dict[str, tuple[str, ...]] = {}
    phone: dict[str, tuple[str, ...]] = {}
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 100 + i)
        first[locale] = tuple(fake.first_name() for _ in range(POOL // 4))
        last[locale] = tuple(fake.last_name() for _ in range(POOL // 4))
        company[locale] = tuple(fake.company() for _ in range(POOL // 2))
        city[locale] = tuple(fake.city() for _ in range(POOL // 8))
        phone[locale] = tuple(fake.phone_number() for _ in range(POOL // 8))
    fake = Faker("en_US")
    fake.seed_instance(seed)
    job = tuple(fake.job() for _ in range(POOL)) + SENIOR_TITLES * 12
    return _Pools(first, last, company, city, job, phone)


def _ascii_slug(text: str, fallback: str) -> str:
    slug = "".join(ch for ch in text.lower() if ch.isascii() and (ch.isalnum() or ch in ".-"))
    return slug.strip(".-") or fallback


def generate(count: int, seed: int = 42, *, start: datetime = EPOCH) -> Iterator[DemoLead]:
    """Yield ``count`` demo leads, the same ones for the same ``seed``, lazily."""
    rng = random.Random(seed)
    pools = _pools(seed)
    stages = [s for s, _ in STAGES]
    stage_weights = [w for _, w in STAGES]
    sources = [s for s, _ in SOURCES]
    source_weights = [w for _, w in SOURCES]
    recent: list[DemoLead] = []
    span = max(60.0, 300.0 * 24 * 3600 / max(count, 1))
    for key in range(count):
        if recent and rng.random() < 0.03:
            lead = _duplicate(rng, key, rng.choice(recent))
        else:
            lead = _lead(
                rng, pools, key, start, span, stages, stage_weights, sources, source_weights
            )
        if len(recent) < 64:
            recent.append(lead)
        else:
            recent[rng.randrange(64)] = lead
        yield lead


def _lead(
    rng: random.Random,
    pools: _Pools,
    key: int,
    start: datetime,
    span: float,
    stages: list[str],
    stage_weights: list[int],
    sources: list[str],
    source_weights: list[int],
) -> DemoLead:
    locale = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
    first, last = rng.choice(pools.first[locale]), rng.choice(pools.last[locale])
    mess: list[str] = []
    if locale in {"ar_SA", "he_IL"}:
        mess.append("rtl_name")
    company: str | None = rng.choice(pools.company[locale])
    industry: str | None = rng.choice(INDUSTRIES)
    employees: int | None = int(rng.lognormvariate(4.5, 1.6)) + 1
    domain = _ascii_slug(company or "", "example").replace(".", "")[:24] + ".example.com"
    user = _ascii_slug(f"{first}.{last}", f"contact{key}")
    if rng.random() < 0.15:
        domain = rng.choice(FREE_MAIL)
    email = f"{user}.{key}@{domain}"
    if rng.random() < 0.02:
        email = rng.choice(INVALID_EMAILS).format(u=user, d=domain)
        mess.append("invalid_email")
    elif rng.random() < 0.04:
        email = f"  {email.upper()} " if rng.random() < 0.5 else email.title()
        mess.append("email_case")
    if rng.random() < 0.06:
        company = None
        mess.append("missing_company")
    job: str | None = rng.choice(pools.job)
    if rng.random() < 0.05:
        job = None
    if rng.random() < 0.01:
        job = ((job or "Manager") + " / ") * 30
        mess.append("long_value")
    if rng.random() < 0.04:
        industry = None
    if rng.random() < 0.05:
        employees = None
    stage = rng.choices(stages, stage_weights)[0]
    engaged = stages.index(stage) if stage in stages[:7] else 2
    created = start + timedelta(seconds=key * span + rng.uniform(0, span))
    updated = created + timedelta(hours=rng.uniform(0, 24 * 20))
    in_sales = stage in {"sal", "sql", "opportunity", "customer"} or (
        stage in {"recycled", "disqualified", "mql"} and rng.random() < 0.5
    )
    converted = stage in {"sql", "opportunity", "customer"}
    return DemoLead(
        key=key,
        first_name=first,
        last_name=last,
        email=email,
        company=company,
        job_title=job,
        phone=rng.choice(pools.phone[locale]) if rng.random() < 0.7 else None,
        country=COUNTRY_OF_LOCALE[locale],
        city=rng.choice(pools.city[locale]),
        employees=employees,
        industry=industry,
        website=f"https://www.{domain}" if company else None,
        lead_source=rng.choices(sources, source_weights)[0],
        stage=stage,
        page_views=int(rng.expovariate(1 / (3 + 6 * engaged))),
        email_opens=int(rng.expovariate(1 / (1 + 3 * engaged))),
        email_clicks=int(rng.expovariate(1 / (0.3 + engaged))),
        form_submissions=min(12, int(rng.expovariate(1 / (0.3 + 0.6 * engaged)))),
        created_at=created,
        updated_at=updated,
        in_marketing=rng.random() < 0.97 or not in_sales,
        in_sales=in_sales,
        sales_status=_sales_status(stage) if in_sales else None,
        converted=converted,
        opportunity=_opportunity(rng, company or last, stage, updated) if converted else None,
        mess=tuple(mess),
    )


def _sales_status(stage: str) -> str:
    return {
        "mql": "Open - Not Contacted",
        "sal": "Working - Contacted",
        "recycled": "Closed - Not Converted",
        "disqualified": "Closed - Not Converted",
    }.get(stage, "Closed - Converted")


def _opportunity(
    rng: random.Random, account: str, stage: str, updated: datetime
) -> DemoOpportunity | None:
    if stage == "sql" and rng.random() < 0.5:
        return None
    won = stage == "customer"
    lost = stage != "customer" and rng.random() < 0.25
    name = f"{account[:60]} - {rng.choice(('New Business', 'Expansion', 'Pilot'))}"
    return DemoOpportunity(
        name=name,
        stage_name="Closed Won" if won else "Closed Lost" if lost else rng.choice(OPPORTUNITY_OPEN),
        amount=float(round(rng.lognormvariate(9.8, 0.8), -2)),
        close_date=(updated + timedelta(days=rng.randint(10, 120))).date().isoformat(),
        is_closed=won or lost,
        is_won=won,
    )


def _duplicate(rng: random.Random, key: int, of: DemoLead) -> DemoLead:
    """The same person again: their email in another case, with spaces, maybe in another system."""
    email = of.email.strip()
    variant = rng.choice((email.upper(), f" {email} ", email.capitalize(), email.swapcase()))
    in_sales = not of.in_sales if rng.random() < 0.6 else of.in_sales
    return DemoLead(
        key=key,
        first_name=of.first_name.upper() if rng.random() < 0.3 else of.first_name,
        last_name=of.last_name,
        email=variant,
        company=of.company,
        job_title=of.job_title,
        phone=of.phone,
        country=of.country,
        city=of.city,
        employees=of.employees,
        industry=of.industry,
        website=of.website,
        lead_source=of.lead_source,
        stage=of.stage,
        page_views=of.page_views + rng.randint(0, 5),
        email_opens=of.email_opens,
        email_clicks=of.email_clicks,
        form_submissions=of.form_submissions,
        created_at=of.created_at + timedelta(hours=1),
        updated_at=of.updated_at + timedelta(hours=1),
        in_marketing=not in_sales or of.in_marketing,
        in_sales=in_sales,
        sales_status=of.sales_status or ("Open - Not Contacted" if in_sales else None),
        converted=False,
        opportunity=None,
        duplicate_of=of.key,
        mess=(*of.mess, "duplicate"),
    )
