"""
Questions about opening times, recognised and answered from the shop's hours, in the chat's
language (issue 30).

`recognise(text, language, today, schedule)` reads a question with a small grammar per language
(the chat's, and English, which customers often write in): it is about opening times when it
says open / closed / hours / "how late" in that language and nothing about delivery, pick-up,
calls or orders ("do you deliver on Sundays?" stays the FAQ's). What it asks about: now (or no
day at all), today, tomorrow, a weekday, a date ("December 25", "25 de diciembre", "25.12."), a
named holiday ("Christmas Eve", "Nochebuena", "Heiligabend", or any holiday name of the shop's
calendar), or the hours in general ("what are your opening hours?").

`answer(schedule, question, now, language)` says it in a sentence or two, with the day and month
names and the time format of the language (Django's translations and formats); every sentence
goes through gettext, so the .po files carry it. `answer_question` is both in one call: None when
the text is not an hours question.

`status_line` ("Open now · closes at 6:00 PM", the widget's header) and `reply_promise` ("We're
closed now; we'll reply after we open on Monday at 9:00 AM", the hand-off) are said the same way.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from dateutil.easter import easter
from django.utils import formats, translation
from django.utils.dates import MONTHS, MONTHS_3, WEEKDAYS
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from faq.hours import schedule as sched

# --- Understanding the question -----------------------------------------------------------------


def fold(text: str) -> str:
    """Lowercase, accents and apostrophes dropped, ß as ss, spaces single: what every pattern
    below is written against ("¿Abrís el sábado?" -> "¿abris el sabado?")."""
    text = text.lower().replace("ß", "ss").replace("’", "'").replace("`", "'")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.replace("'", "")
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Grammar:
    """One language's words, folded. `asks`: open / closed / hours words; `not_about`: topics
    that make it another question (delivery, orders...); `today`, `tomorrow`: time words;
    `weekdays`: extra weekday forms (plurals) besides Django's names; `general`: the
    words for opening hours as a whole ("what are your hours?": the week); `holidays`: the word
    holidays ("holiday hours?": the special days to come); `weekend`: the word weekend."""

    asks: str
    not_about: str
    today: str
    tomorrow: str
    weekdays: tuple[str, ...] = ()
    general: str = r"$^"
    holidays: str = r"$^"
    weekend: str = r"$^"


GRAMMARS: dict[str, Grammar] = {
    "en": Grammar(
        asks=r"\b(open|opens|opened|opening|close|closes|closed|closing|hours|how late|until "
        r"when|till when)\b",
        not_about=r"\b(deliver\w*|ship\w*|courier|pick ?-?ups?|collect\w*|calls?|phone|reply|"
        r"respond|orders?|ordering|book\w*|consult\w*|returns?|refunds?|account|box|package|"
        r"parcel|buds?|bloom\w*|close to|closest|closer|near\w*|how many hours|last\w*)\b|"
        r"\d+ ?(hours|hrs|h)\b|hours? (ahead|in advance|notice|before|after|later)|"
        r"\bopen(ed)? (a|an|the|my|it|them)\b",
        today=r"\b(today|tonight|this (evening|afternoon|morning))\b",
        tomorrow=r"\b(tomorrow|tmrw|tmr)\b",
        weekdays=(
            "mondays",
            "tuesdays",
            "wednesdays",
            "thursdays",
            "fridays",
            "saturdays",
            "sundays",
        ),
        general=r"\b(hours|opening times|business times|when (are|r) (you|u|ya) open|what days)\b",
        holidays=r"\bholidays?\b",
        weekend=r"\bweekend\b",
    ),
    "es": Grammar(
        asks=r"\b(abiert[oa]s?|abre[ns]?|abris|abrir|abrimos|cerrad[oa]s?|cierra[ns]?|cerrais|"
        r"cerrar|horarios?|hora de apertura|hasta que hora|hasta cuando)\b",
        not_about=r"\b(entreg\w*|envi\w*|reparto|repart\w*|domicilio|recog\w*|llam\w*|"
        r"pedidos?|reserv\w*|devol\w*|cerca de|cuantas horas)\b|\d+ ?horas\b",
        today=r"\b(hoy|esta noche|esta tarde)\b",
        tomorrow=r"(?<!la )(?<!esta )\bmanana\b",
        weekdays=("lunes", "martes", "miercoles", "jueves", "viernes", "sabados", "domingos"),
        general=r"\bhorarios?\b",
        holidays=r"\b(festivos?|feriados?|fiestas)\b",
        weekend=r"\bfin de semana\b",
    ),
    "de": Grammar(
        asks=r"\b(offen|geoffnet|offnet|offnen|oeffnen|geschlossen|schliesst|schliessen|"
        r"offnungszeiten|oeffnungszeiten|geschaftszeiten|bis wann)\b|"
        r"\b(habt|haben|hat|ist|sind)\b[^?]*\b(auf|zu)\s*\?*$",
        not_about=r"\b(liefer\w*|zustell\w*|versand\w*|versend\w*|abhol\w*|anruf\w*|bestell\w*|"
        r"reservier\w*|ruckgab\w*|in der nahe|dauert|halt\w*|wie viele stunden)\b|"
        r"\d+ ?stunden\b",
        today=r"\b(heute|heute abend|heute morgen)\b",
        tomorrow=r"(?<!heute )(?<!am )(?<!jeden )\bmorgen\b",
        weekdays=(
            "montags",
            "dienstags",
            "mittwochs",
            "donnerstags",
            "freitags",
            "samstags",
            "sonntags",
        ),
        general=r"\b(offnungszeiten|oeffnungszeiten|geschaftszeiten)\b",
        holidays=r"\b(feiertage?n?|feiertagen)\b",
        weekend=r"\bwochenende\b",
    ),
    "fr": Grammar(
        asks=r"\b(ouverts?|ouvertes?|ouvre[zs]?|ouvrent|ouvrir|fermes?|fermees?|fermez|ferment|"
        r"fermer|fermeture|horaires?|heures douverture|jusqua quelle heure|jusqua quand)\b",
        not_about=r"\b(livr\w*|expedi\w*|envoi\w*|retrait|retir\w*|appel\w*|command\w*|"
        r"reserv\w*|rembours\w*|pres de|combien dheures)\b|\d+ ?heures\b",
        today=r"\b(aujourdhui|ce soir)\b",
        tomorrow=r"\bdemain\b",
        weekdays=("lundis", "mardis", "mercredis", "jeudis", "vendredis", "samedis", "dimanches"),
        general=r"\b(horaires?|heures douverture)\b",
        holidays=r"\b(jours? feries?|fetes)\b",
        weekend=r"\bweek-?end\b",
    ),
    "it": Grammar(
        asks=r"\b(apert[oaie]|aprite|apre|aprono|aprire|chius[oaie]|chiudete|chiude|chiudono|"
        r"chiudere|orari|orario|apertura|fino a che ora|fino a quando)\b",
        not_about=r"\b(consegn\w*|spedi\w*|ritir\w*|chiam\w*|ordin\w*|prenot\w*|rimbors\w*|"
        r"vicino|quante ore)\b|\d+ ?ore\b",
        today=r"\b(oggi|stasera|stamattina)\b",
        tomorrow=r"\bdomani\b",
        weekdays=("lunedi", "martedi", "mercoledi", "giovedi", "venerdi", "sabati", "domeniche"),
        general=r"\b(orari|orario)\b",
        holidays=r"\b(festivi|festivita|feste)\b",
        weekend=r"\b(fine settimana|weekend)\b",
    ),
    "pt": Grammar(
        asks=r"\b(abert[oa]s?|abre[m]?|abrir|fechad[oa]s?|fecha[m]?|fechar|horarios?|"
        r"funcionamento|ate que horas|ate quando)\b",
        not_about=r"\b(entreg\w*|envi\w*|retir\w*|lig\w*|encomend\w*|pedidos?|reserv\w*|"
        r"reembols\w*|perto de|quantas horas)\b|\d+ ?horas\b",
        today=r"\b(hoje)\b",
        tomorrow=r"\bamanha\b",
        weekdays=("segundas", "tercas", "quartas", "quintas", "sextas", "sabados", "domingos"),
        general=r"\b(horarios?|funcionamento)\b",
        holidays=r"\b(feriados?|festas)\b",
        weekend=r"\bfim de semana\b",
    ),
    "nl": Grammar(
        asks=r"\b(open|geopend|gesloten|dicht|sluit|sluiten|openingstijden|openingsuren|"
        r"tot hoe laat|hoe laat)\b",
        not_about=r"\b(bezorg\w*|lever\w*|verzend\w*|afhal\w*|opbel\w*|bel\w*|bestel\w*|"
        r"reserv\w*|terugbetal\w*|dichtbij|in de buurt|hoeveel uur)\b|\d+ ?uur\b",
        today=r"\b(vandaag|vanavond)\b",
        tomorrow=r"\bmorgen\b",
        weekdays=(
            "maandags",
            "dinsdags",
            "woensdags",
            "donderdags",
            "vrijdags",
            "zaterdags",
            "zondags",
        ),
        general=r"\b(openingstijden|openingsuren)\b",
        holidays=r"\b(feestdagen|feestdag)\b",
        weekend=r"\bweekend\b",
    ),
    "ar": Grammar(
        asks=r"(مفتوح|تفتح|يفتح|تفتحون|فاتح|مغلق|تغلق|يغلق|تغلقون|تقفل|مسكر|ساعات العمل|"
        r"مواعيد العمل|اوقات العمل|الدوام|حتى متى|الى متى)",
        not_about=r"(توصيل|يوصل|توصلون|شحن|استلام|طلب|حجز|استرجاع|قريب)",
        today=r"(اليوم|الليله|الليلة)",
        tomorrow=r"(غدا|بكره|بكرة|غد)",
        general=r"(ساعات العمل|مواعيد العمل|اوقات العمل|الدوام)",
        holidays=r"(العطل|الاعياد|العطلات)",
        weekend=r"(نهاية الاسبوع|الويكند)",
    ),
    "he": Grammar(
        asks=r"(פתוח|פתוחים|פתוחה|פותח|פותחים|נפתח|סגור|סגורים|סגורה|סוגר|סוגרים|שעות פתיחה|"
        r"שעות הפתיחה|שעות הפעילות|שעות פעילות|עד מתי|עד איזו שעה)",
        not_about=r"(משלוח|משלוחים|שליח|איסוף|הזמנ|להזמין|החזר|קרוב)",
        today=r"(היום|הערב)",
        tomorrow=r"(מחר)",
        general=r"(שעות הפתיחה|שעות פתיחה|שעות הפעילות|שעות פעילות)",
        holidays=r"(חגים|בחגים)",
        weekend=r"(סוף השבוע|סופ\"ש|סופש)",
    ),
}

# Holidays customers name, in every language the widget speaks (folded). Each has the name the
# `holidays` library gives it in English (to find its date in the shop's calendar), the name an
# answer uses (translated by gettext), and where it has one, its date by rule, for calendars
# that do not list it.
HOLIDAY_WORDS: dict[str, tuple[str, object, tuple[str, ...]]] = {
    "christmas_eve": (
        "Christmas Eve",
        gettext_lazy("Christmas Eve"),
        (
            "christmas eve",
            "xmas eve",
            "nochebuena",
            "vispera de navidad",
            "heiligabend",
            "heiligen abend",
            "heilig abend",
            "weihnachtsabend",
            "veille de noel",
            "reveillon de noel",
            "vigilia di natale",
            "vespera de natal",
            "consoada",
            "kerstavond",
            "ليله عيد الميلاد",
            "ليلة عيد الميلاد",
            "ערב חג המולד",
        ),
    ),
    "christmas": (
        "Christmas Day",
        gettext_lazy("Christmas Day"),
        (
            "christmas day",
            "christmas",
            "xmas",
            "navidad",
            "dia de navidad",
            "weihnachten",
            "erster weihnachtstag",
            "1. weihnachtstag",
            "weihnachtstag",
            "noel",
            "jour de noel",
            "natale",
            "giorno di natale",
            "natal",
            "dia de natal",
            "kerstmis",
            "eerste kerstdag",
            "kerst",
            "عيد الميلاد",
            "الكريسماس",
            "חג המולד",
            "כריסמס",
        ),
    ),
    "boxing_day": (
        "Second Day of Christmas",
        gettext_lazy("Boxing Day"),
        (
            "boxing day",
            "zweiter weihnachtstag",
            "2. weihnachtstag",
            "tweede kerstdag",
            "santo stefano",
            "san esteban",
            "saint etienne",
        ),
    ),
    "new_years_eve": (
        "New Year's Eve",
        gettext_lazy("New Year's Eve"),
        (
            "new years eve",
            "nye",
            "nochevieja",
            "fin de ano",
            "silvester",
            "saint sylvestre",
            "saint-sylvestre",
            "reveillon du nouvel an",
            "san silvestro",
            "vigilia di capodanno",
            "vespera de ano novo",
            "reveillon",
            "oudejaarsavond",
            "oudejaarsdag",
            "oudjaar",
            "ليلة راس السنة",
            "ליל הסילבסטר",
            "סילבסטר",
        ),
    ),
    "new_years_day": (
        "New Year's Day",
        gettext_lazy("New Year's Day"),
        (
            "new years day",
            "new years",
            "new year",
            "ano nuevo",
            "dia de ano nuevo",
            "neujahr",
            "neujahrstag",
            "jour de lan",
            "nouvel an",
            "capodanno",
            "ano novo",
            "dia de ano novo",
            "nieuwjaarsdag",
            "nieuwjaar",
            "راس السنة",
            "ראש השנה האזרחית",
        ),
    ),
    "good_friday": (
        "Good Friday",
        gettext_lazy("Good Friday"),
        (
            "good friday",
            "viernes santo",
            "karfreitag",
            "vendredi saint",
            "venerdi santo",
            "sexta-feira santa",
            "sexta feira santa",
            "goede vrijdag",
            "الجمعة العظيمة",
        ),
    ),
    "easter_sunday": (
        "Easter Sunday",
        gettext_lazy("Easter Sunday"),
        (
            "easter sunday",
            "easter",
            "domingo de pascua",
            "domingo de resurreccion",
            "pascua",
            "ostersonntag",
            "ostern",
            "dimanche de paques",
            "paques",
            "domenica di pasqua",
            "pasqua",
            "domingo de pascoa",
            "pascoa",
            "eerste paasdag",
            "paaszondag",
            "pasen",
            "عيد الفصح",
            "פסחא",
        ),
    ),
    "easter_monday": (
        "Easter Monday",
        gettext_lazy("Easter Monday"),
        (
            "easter monday",
            "lunes de pascua",
            "ostermontag",
            "lundi de paques",
            "pasquetta",
            "lunedi dellangelo",
            "segunda-feira de pascoa",
            "tweede paasdag",
            "paasmaandag",
        ),
    ),
    "thanksgiving": (
        "Thanksgiving Day",
        gettext_lazy("Thanksgiving"),
        (
            "thanksgiving day",
            "thanksgiving",
            "dia de accion de gracias",
            "accion de gracias",
            "erntedankfest",
            "action de grace",
            "festa del ringraziamento",
            "ringraziamento",
            "dia de acao de gracas",
            "acao de gracas",
            "عيد الشكر",
            "חג ההודיה",
        ),
    ),
    "valentines_day": (
        "Valentine's Day",
        gettext_lazy("Valentine's Day"),
        (
            "valentines day",
            "valentines",
            "valentine",
            "san valentin",
            "valentinstag",
            "saint-valentin",
            "saint valentin",
            "san valentino",
            "dia dos namorados",
            "sao valentim",
            "valentijnsdag",
            "valentijn",
            "عيد الحب",
            "ולנטיין",
        ),
    ),
    "mothers_day": (
        "Mother's Day",
        gettext_lazy("Mother's Day"),
        (
            "mothers day",
            "mother day",
            "dia de la madre",
            "muttertag",
            "fete des meres",
            "festa della mamma",
            "dia das maes",
            "moederdag",
            "عيد الام",
            "יום האם",
        ),
    ),
    "fathers_day": (
        "Father's Day",
        gettext_lazy("Father's Day"),
        (
            "fathers day",
            "dia del padre",
            "vatertag",
            "fete des peres",
            "festa del papa",
            "dia dos pais",
            "vaderdag",
            "عيد الاب",
            "יום האב",
        ),
    ),
    "halloween": ("Halloween", gettext_lazy("Halloween"), ("halloween",)),
    "independence_day": (
        "Independence Day",
        gettext_lazy("Independence Day"),
        ("independence day", "fourth of july", "4th of july", "july 4th", "july fourth"),
    ),
    "labor_day": ("Labor Day", gettext_lazy("Labor Day"), ("labor day", "labour day")),
    "memorial_day": ("Memorial Day", gettext_lazy("Memorial Day"), ("memorial day",)),
}


def holiday_by_rule(key: str, year: int) -> date | None:
    """Holidays whose date needs no calendar."""
    fixed = {
        "christmas_eve": (12, 24),
        "christmas": (12, 25),
        "new_years_eve": (12, 31),
        "new_years_day": (1, 1),
        "valentines_day": (2, 14),
        "halloween": (10, 31),
    }
    if key in fixed:
        return date(year, *fixed[key])
    offsets = {"easter_sunday": 0, "easter_monday": 1, "good_friday": -2}
    if key in offsets:
        return easter(year) + timedelta(days=offsets[key])
    return None


@dataclass(frozen=True)
class HoursQuestion:
    """What a question asks: `when` is "now" (no day named: the status), "day" (`day`, with
    the holiday's key or name and whether the customer named a weekday), "week" (the hours in
    general), "holidays" (the special days to come) or "weekend" (from `day`, a Saturday, or
    a Sunday that is today)."""

    when: str
    day: date | None = None
    holiday: str = ""
    weekday: bool = False


def _grammars(language: str) -> list[Grammar]:
    chosen = [GRAMMARS[language]] if language in GRAMMARS else []
    return chosen + ([GRAMMARS["en"]] if language != "en" else [])


def _alternation(words) -> str:
    """A regex group of the words (folded), longest first."""
    return _alternation_of(tuple(str(w) for w in words))


@functools.lru_cache(maxsize=1024)
def _alternation_of(words: tuple[str, ...]) -> str:
    # The same few word lists at every question (weekdays, months): folded once.
    alternatives = sorted({fold(w) for w in words if w.strip()}, key=len, reverse=True)
    return "(" + "|".join(re.escape(w) for w in alternatives) + ")"


def _words(words) -> str:
    """The words as whole words (in Hebrew, also with a one-letter prefix: "בחג המולד")."""
    return r"(?<!\w)(?:ו?[בלהמ](?=[\u05d0-\u05ea]))?" + _alternation(words) + r"(?!\w)"


NAME_TABLES = {"weekdays": WEEKDAYS, "months": MONTHS, "months_short": MONTHS_3}


@functools.lru_cache(maxsize=64)
def _language_names(language: str, table: str) -> tuple[tuple[str, ...], ...]:
    """Django's names (weekdays or months) in `language` and in English, folded."""
    names = []
    for key in sorted(NAME_TABLES[table]):
        with translation.override("en"):
            forms = {fold(str(NAME_TABLES[table][key]))}
        with translation.override(language):
            forms.add(fold(str(NAME_TABLES[table][key])))
        names.append(tuple(sorted(forms)))
    return tuple(names)


def _find_weekday(text: str, language: str, grammars: list[Grammar]) -> int | None:
    for weekday, forms in enumerate(_language_names(language, "weekdays")):
        extra = [g.weekdays[weekday] for g in grammars if g.weekdays]
        words = [*forms, *extra]
        if language == "he":
            # Hebrew weekday names are also numbers ("שני": second): only after "יום" (day),
            # which may carry a prefix ("ביום": on the day); Saturday stands alone ("בשבת").
            words = [w for w in words if w.isascii()] + [
                f"{prefix}יום {w}" for w in words if not w.isascii() for prefix in ("", "ב", "וב")
            ]
            if weekday == 5:
                words += ["שבת", "בשבת"]
        if re.search(_words(words), text):
            return weekday
    return None


def _next_date(today: date, month: int, day: int) -> date | None:
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            return None
        if candidate >= today:
            return candidate
    return None


def _find_date(text: str, language: str, today: date) -> date | None:
    iso = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", text)
    if iso:
        try:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        except ValueError:
            return None
    months = [
        full + short
        for full, short in zip(
            _language_names(language, "months"),
            _language_names(language, "months_short"),
            strict=True,
        )
    ]
    for number, forms in enumerate(months, start=1):
        names = r"(?<!\w)" + _alternation(forms) + r"\.?(?!\w)"  # "Dec." too
        day = r"(\d{1,2})(st|nd|rd|th|er|e|o|a|\.)?"
        found = re.search(rf"{names} (the )?{day}(?!\d)", text) or re.search(
            rf"(?<!\d){day} (de |of |d |ב)?{names}", text
        )
        if found:
            digits = next(g for g in found.groups() if g and g.isdigit())
            return _next_date(today, number, int(digits))
    numeric = re.search(r"(?<![\d/.])(\d{1,2})[/.](\d{1,2})\.?(?![\d/])", text)
    if numeric:
        first, second = int(numeric[1]), int(numeric[2])
        month, day = (first, second) if language == "en" else (second, first)
        return _next_date(today, month, day)
    return None


@functools.lru_cache(maxsize=256)
def library_language(country: str, language: str) -> str | None:
    """The `holidays` library's code for `language` in `country`'s calendar ("it" -> "it_IT"),
    or None when it has no names in that language."""
    import holidays

    codes = holidays.country_holidays(country).supported_languages
    return next((code for code in codes if code.split("_")[0] == language), None)


@functools.lru_cache(maxsize=64)
def _calendar_names(
    country: str, subdivision: str, year: int, code: str | None
) -> tuple[re.Pattern | None, dict[str, tuple[date, str]]]:
    """One pattern for every holiday name of a calendar year (in the library's language
    `code`), and each folded name's date and name as HolidayRule keeps it."""
    own = sched.holiday_calendar(country, subdivision, year)
    found: dict[str, tuple[date, str]] = {}
    for day, names in sched.holiday_calendar(country, subdivision, year, code).items():
        for n, name in enumerate(names):
            folded = fold(re.sub(r"\(.*?\)", "", name))
            kept = own.get(day, ())
            if len(folded) > 3:
                found.setdefault(folded, (day, kept[n] if n < len(kept) else name))
    return (re.compile(_words(found)) if found else None), found


def _calendar_holiday(
    text: str, language: str, schedule: sched.Schedule | None, today: date
) -> tuple[date, str] | None:
    """A holiday of the shop's own calendar named in English or in the chat's language, if the
    library has that language for the country ("Fronleichnam"): its date and calendar name."""
    if schedule is None or not schedule.country:
        return None
    codes = dict.fromkeys([None, library_language(schedule.country, language)])
    best: tuple[int, date, str] | None = None
    for year in (today.year, today.year + 1):
        for code in codes:
            pattern, names = _calendar_names(schedule.country, schedule.subdivision, year, code)
            for match in pattern.finditer(text) if pattern else ():
                day, name = names[match.group(1)]
                candidate = (-len(match.group(1)), day, name)
                if day >= today and (best is None or candidate < best):
                    best = candidate
    return (best[1], best[2]) if best else None


@functools.cache
def _alias_keys() -> dict[str, str]:
    """Every folded holiday alias of HOLIDAY_WORDS, and its key."""
    return {fold(a): key for key, (_, _, aliases) in HOLIDAY_WORDS.items() for a in aliases}


@functools.cache
def _holiday_aliases() -> re.Pattern:
    return re.compile(_words(_alias_keys()))


# A holiday was named that neither the shop's calendar nor a rule can date.
UNDATED = (date.min, "")


def _named_holiday(
    text: str, schedule: sched.Schedule | None, today: date
) -> tuple[date, str] | None:
    """The next date of a holiday the customer named, and the key of HOLIDAY_WORDS; UNDATED
    when it has no date here (Thanksgiving for a German shop), None when none was named."""
    matches = [match.group(1) for match in _holiday_aliases().finditer(text)]
    for alias in sorted(matches, key=len, reverse=True)[:1]:
        key = _alias_keys()[alias]
        english = HOLIDAY_WORDS[key][0]
        for year in (today.year, today.year + 1):
            if schedule is not None and schedule.country:
                calendar = sched.holiday_calendar(schedule.country, schedule.subdivision, year)
                for day, names in calendar.items():
                    if day >= today and any(n == english for n in names):
                        return day, key
            by_rule = holiday_by_rule(key, year)
            if by_rule is not None and by_rule >= today:
                return by_rule, key
        return UNDATED
    return None


def recognise(
    text: str, language: str, today: date, schedule: sched.Schedule | None = None
) -> HoursQuestion | None:
    """What an opening-times question asks, or None when `text` is not one."""
    folded = fold(text)
    grammars = _grammars(language)
    if not any(re.search(g.asks, folded) for g in grammars):
        return None
    if any(re.search(g.not_about, folded) for g in grammars):
        return None
    holiday = _named_holiday(folded, schedule, today)
    if holiday is UNDATED:
        return None  # better the FAQ's answer than the hours of some other day
    if holiday is None:
        calendar = _calendar_holiday(folded, language, schedule, today)
        if calendar is not None:
            return HoursQuestion("day", calendar[0], holiday=calendar[1])
    else:
        return HoursQuestion("day", holiday[0], holiday=holiday[1])
    on_date = _find_date(folded, language, today)
    if on_date is not None:
        return HoursQuestion("day", on_date)
    if any(re.search(g.tomorrow, folded) for g in grammars):
        return HoursQuestion("day", today + timedelta(days=1))
    if any(re.search(g.weekend, folded) for g in grammars):
        saturday = today + timedelta(days=(5 - today.weekday()) % 7)
        return HoursQuestion("weekend", today if today.weekday() == 6 else saturday)
    weekday = _find_weekday(folded, language, grammars)
    if weekday is not None:
        days_ahead = (weekday - today.weekday()) % 7
        return HoursQuestion("day", today + timedelta(days=days_ahead), weekday=True)
    if any(re.search(g.today, folded) for g in grammars):
        return HoursQuestion("day", today)
    if any(re.search(g.holidays, folded) for g in grammars):
        return HoursQuestion("holidays")
    if any(re.search(g.general, folded) for g in grammars):
        return HoursQuestion("week")
    return HoursQuestion("now")


# --- Saying it ----------------------------------------------------------------------------------


def clock(value: time) -> str:
    """A time in the active language's format: 9:00 AM in English, 09:00 in German."""
    if translation.get_language() in (None, "en", "en-us"):
        return formats.time_format(value, "g:i A")
    return formats.time_format(value, formats.get_format("TIME_FORMAT"))


def day_name(day: date) -> str:
    """Friday, December 25 / viernes, 25 de diciembre / Freitag, 25. Dezember."""
    comma = "، " if translation.get_language() == "ar" else ", "
    text = formats.date_format(day, "l") + comma + formats.date_format(day, "MONTH_DAY_FORMAT")
    if translation.get_language() in ("it", "pt"):
        text = text.lower()  # their weekday and month names are not capitalised mid-sentence
    return text


def weekday_title(weekday: int) -> str:
    """A weekday's name (Monday = 0) in the active language, as written mid-sentence."""
    name = str(WEEKDAYS[weekday])
    return name.lower() if translation.get_language() in ("it", "pt") else name


def ranges_text(ranges: tuple[sched.Range, ...]) -> str:
    parts = [
        _("{opens} to {closes}").format(opens=clock(r.opens), closes=clock(r.closes))
        for r in ranges
    ]
    return _(" and ").join(parts)


def holiday_title(schedule: sched.Schedule, day: date, name: str) -> str:
    """A holiday's name for the customer, in the active language: ours (translated by gettext)
    for the holidays customers name, else the library's in that language if it has it, else
    the calendar's name."""
    for key, (english_name, title, _aliases) in HOLIDAY_WORDS.items():
        if name in (key, english_name):
            return str(title)
    code = library_language(schedule.country, translation.get_language() or "en")
    names = sched.holiday_calendar(schedule.country, schedule.subdivision, day.year).get(day, ())
    if code is None or name not in names:
        return name
    local = sched.holiday_calendar(schedule.country, schedule.subdivision, day.year, code)
    translated = local.get(day, ())
    return translated[names.index(name)] if len(translated) == len(names) else name


def day_title(schedule: sched.Schedule, hours: sched.DayHours, holiday: str = "") -> str:
    """The day as an answer names it: "Christmas Day (Friday, December 25)", or with the
    exception's note: "Monday, January 4 (Inventory day)"."""
    name = holiday or (hours.name if hours.kind == "holiday" else "")
    if name:
        return _("{holiday} ({date})").format(
            holiday=holiday_title(schedule, hours.day, name), date=day_name(hours.day)
        )
    if hours.kind == "exception" and hours.name:
        return _("{date} ({note})").format(date=day_name(hours.day), note=hours.name)
    return day_name(hours.day)


def moment_text(schedule: sched.Schedule, moment: datetime, now: datetime) -> str:
    """ "today at 9:00 AM", "tomorrow at 9:00 AM", "on Saturday, December 26 at 9:00 AM"."""
    local = moment.astimezone(schedule.time_zone)
    today = now.astimezone(schedule.time_zone).date()
    at = clock(local.time())
    if local.date() == today:
        return _("today at {time}").format(time=at)
    if local.date() == today + timedelta(days=1):
        return _("tomorrow at {time}").format(time=at)
    return _("on {date} at {time}").format(date=day_name(local.date()), time=at)


def _reopening(schedule: sched.Schedule, after: datetime, now: datetime) -> str:
    opening = sched.next_opening(schedule, after)
    if opening is None:
        return ""
    return " " + _("We open again {moment}.").format(moment=moment_text(schedule, opening, now))


def now_answer(schedule: sched.Schedule, now: datetime) -> str:
    state = sched.status(schedule, now)
    today = sched.day_hours(schedule, now.astimezone(schedule.time_zone).date())
    if state.open:
        until = state.next_change
        if until is not None and until.date() != now.astimezone(schedule.time_zone).date():
            return _("We're open now, until {moment}.").format(
                moment=moment_text(schedule, until, now)
            )
        return _("We're open now, until {time}.").format(time=clock(until.time()) if until else "")
    if today.special and today.closed:
        text = _("We're closed today, {day}.").format(day=day_title(schedule, today))
    else:
        text = _("We're closed now.")
    return text + _reopening(schedule, now, now)


# The sentences about one day, by (today / tomorrow / another day) and what holds that day.
def _day_sentence(relative: str, state: str) -> str:
    sentences = {
        ("today", "closed"): _("We're closed today, {day}."),
        ("tomorrow", "closed"): _("We're closed tomorrow, {day}."),
        ("", "closed"): _("We're closed on {day}."),
        ("today", "usual"): _("Today, {day}, we're open as usual, {hours}."),
        ("tomorrow", "usual"): _("Tomorrow, {day}, we're open as usual, {hours}."),
        ("", "usual"): _("On {day} we're open as usual, {hours}."),
        ("today", "open"): _("Today, {day}, we're open {hours}."),
        ("tomorrow", "open"): _("Tomorrow, {day}, we're open {hours}."),
        ("", "open"): _("On {day} we're open {hours}."),
    }
    return sentences[relative, state]


def day_answer(schedule: sched.Schedule, question: HoursQuestion, now: datetime) -> str:
    assert question.day is not None
    hours = sched.day_hours(schedule, question.day)
    today = now.astimezone(schedule.time_zone).date()
    relative = {today: "today", today + timedelta(days=1): "tomorrow"}.get(hours.day, "")
    if hours.closed:
        state = "closed"
    elif hours.kind == "holiday" and hours.ranges == hours.usual:
        state = "usual"
    else:
        state = "open"
    text = _day_sentence(relative, state).format(
        day=day_title(schedule, hours, question.holiday), hours=ranges_text(hours.ranges)
    )
    if hours.closed:
        after = sched.local_moment(schedule, hours.day + timedelta(days=1), sched.MIDNIGHT)
        text += _reopening(schedule, max(after, now), now)
    if question.weekday and hours.special and hours.ranges != hours.usual:
        weekday = weekday_title(hours.day.weekday())
        if hours.usual:
            text += " " + _("Our usual hours on {weekday} are {hours}.").format(
                weekday=weekday, hours=ranges_text(hours.usual)
            )
        else:
            text += " " + _("We're usually closed on {weekday}.").format(weekday=weekday)
    return text


def week_text(schedule: sched.Schedule) -> str:
    """ "Monday to Friday 9:00 AM to 6:00 PM; Saturday ...; closed on Tuesday"."""
    groups: list[list[int]] = []
    for weekday in range(7):
        if groups and schedule.week.get(groups[-1][-1], ()) == schedule.week.get(weekday, ()):
            groups[-1].append(weekday)
        else:
            groups.append([weekday])
    parts = []
    for group in groups:
        first, last = weekday_title(group[0]), weekday_title(group[-1])
        days = first if len(group) == 1 else _("{first} to {last}").format(first=first, last=last)
        ranges = schedule.week.get(group[0], ())
        if ranges:
            parts.append(
                pgettext("days and hours", "{days} {hours}").format(
                    days=days, hours=ranges_text(ranges)
                )
            )
        else:
            parts.append(_("closed on {day}").format(day=days))
    return "; ".join(parts)


def specials_text(schedule: sched.Schedule, coming: list[sched.DayHours]) -> str:
    """ "Thursday, December 24 (Christmas Eve): 9:00 AM to 3:00 PM; closed on ..."."""
    items = []
    for hours in coming:
        title = day_title(schedule, hours)
        if hours.closed:
            items.append(_("closed on {day}").format(day=title))
        else:
            items.append(_("{day}: {hours}").format(day=title, hours=ranges_text(hours.ranges)))
    return "; ".join(items)


def week_answer(schedule: sched.Schedule, now: datetime) -> str:
    """The week, and the special days of the next 14."""
    text = _("Our opening hours: {week}.").format(week=week_text(schedule))
    today = now.astimezone(schedule.time_zone).date()
    coming = sched.upcoming_specials(schedule, today, 14)
    if coming:
        text += " " + _("Coming up: {days}.").format(days=specials_text(schedule, coming))
    return text


# How many special days a "holiday hours?" answer lists, within a year.
HOLIDAYS_LISTED = 6


def holidays_answer(schedule: sched.Schedule, now: datetime) -> str:
    """The next special days (holidays, closures) within a year."""
    today = now.astimezone(schedule.time_zone).date()
    coming = sched.upcoming_specials(schedule, today, 366)[:HOLIDAYS_LISTED]
    if not coming:
        return _("We have no special hours coming up. Our opening hours: {week}.").format(
            week=week_text(schedule)
        )
    return _("Our special hours coming up: {days}. Other days: {week}.").format(
        days=specials_text(schedule, coming), week=week_text(schedule)
    )


def answer(schedule: sched.Schedule, question: HoursQuestion, now: datetime, language: str) -> str:
    """The answer to `question` at `now`, in `language`."""
    with translation.override(language):
        if question.when == "day":
            return day_answer(schedule, question, now)
        if question.when == "week":
            return week_answer(schedule, now)
        if question.when == "holidays":
            return holidays_answer(schedule, now)
        if question.when == "weekend":
            days = (
                [question.day]
                if question.day.weekday() == 6
                else [
                    question.day,
                    question.day + timedelta(days=1),
                ]
            )
            return " ".join(day_answer(schedule, HoursQuestion("day", d), now) for d in days)
        return now_answer(schedule, now)


def answer_question(
    schedule: sched.Schedule, text: str, now: datetime, language: str
) -> str | None:
    """The answer from the hours when `text` asks about opening times, else None (the FAQ's)."""
    if schedule.is_empty:
        return None
    today = now.astimezone(schedule.time_zone).date()
    question = recognise(text, language, today, schedule)
    if question is None:
        return None
    return answer(schedule, question, now, language)


# --- For the FAQ page, the admin's preview and Claude -------------------------------------------


def days_preview(
    schedule: sched.Schedule, start: date, count: int, language: str
) -> list[dict[str, object]]:
    """The next `count` days as the FAQ page (7) and the admin's preview (14) list them:
    {"date", "title" ("Christmas Day (Friday, December 25)"), "hours" ("9:00 AM to 6:00 PM" or
    "Closed"), "open", "special"}."""
    with translation.override(language):
        return [
            {
                "date": hours.day.isoformat(),
                "title": day_title(schedule, hours),
                "hours": ranges_text(hours.ranges) if hours.ranges else _("Closed"),
                "open": not hours.closed,
                "special": hours.special and hours.ranges != hours.usual,
            }
            for hours in sched.days(schedule, start, count)
        ]


def source_text(schedule: sched.Schedule, now: datetime, language: str) -> str:
    """The hours as one text for Claude (a source like an FAQ entry): now, the week, and the
    special days to come."""
    with translation.override(language):
        return " ".join(
            [now_answer(schedule, now), week_answer(schedule, now), holidays_answer(schedule, now)]
        )


# --- The widget's status and the hand-off -------------------------------------------------------


def _short_moment(schedule: sched.Schedule, moment: datetime, now: datetime) -> str:
    """ "today at 9:00 AM", "tomorrow at ...", "Monday at ..." within the week, else the date."""
    local = moment.astimezone(schedule.time_zone)
    if now.astimezone(schedule.time_zone).date() + timedelta(days=1) < local.date() and (
        local.date() < now.astimezone(schedule.time_zone).date() + timedelta(days=7)
    ):
        return _("{weekday} at {time}").format(
            weekday=weekday_title(local.weekday()), time=clock(local.time())
        )
    return moment_text(schedule, moment, now)


def status_line(schedule: sched.Schedule, now: datetime, language: str) -> dict:
    """The `ready` frame's "hours": {"open", "next_change" (ISO, the shop's offset), "text"}:
    "Open now · closes at 6:00 PM", "Closed now · opens Monday at 9:00 AM"."""
    state = sched.status(schedule, now)
    change = state.next_change
    with translation.override(language):
        if change is None:
            text = _("Open now") if state.open else _("Closed now")
        elif not state.open:
            text = _("Closed now · opens {moment}").format(
                moment=_short_moment(schedule, change, now)
            )
        elif change.date() == now.astimezone(schedule.time_zone).date():
            text = _("Open now · closes at {time}").format(time=clock(change.time()))
        else:
            text = _("Open now · closes {moment}").format(
                moment=_short_moment(schedule, change, now)
            )
    return {
        "open": state.open,
        "next_change": change.isoformat() if change else None,
        "text": text,
    }


def reply_promise(schedule: sched.Schedule, now: datetime, language: str) -> str | None:
    """What the hand-off says while the shop is closed; None when it is open (the usual reply
    time holds) or never opens again."""
    state = sched.status(schedule, now)
    if state.open or state.next_change is None:
        return None
    with translation.override(language):
        return _("We're closed now; we'll reply after we open {moment}.").format(
            moment=moment_text(schedule, state.next_change, now)
        )
