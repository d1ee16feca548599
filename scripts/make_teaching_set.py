"""Generate the bilingual (Korean / English) synthetic teaching set for question decomposition.

The course fine-tunes a small model with LoRA on a CPU for a few minutes, on real questions
(StrategyQA) mixed with this small, very regular set: it teaches the numbered form, and its
templates give the in-template and unseen-template sections of lesson 05's scorecard (the
tiny random-weight test model trains on it alone). Each template pairs one compositional
question pattern (bridge, comparison, intersection, aggregation, superlative, temporal,
yes/no) with a fixed pattern of simple sub-questions that copy the entity names from the
question verbatim.

The set is SYNTHETIC. Entity names are real, but the combinations are random, so the
questions may rest on false or meaningless premises. Nothing in it is claimed to be true:
it teaches the *shape* of a decomposition, not facts.

Output: JSONL (UTF-8), one record per line::

    {"id": "ko-compare_city-3", "question": "...", "sub_questions": ["...", "..."],
     "template": "compare_city", "kind": "comparison", "lang": "ko", "source": "synthetic",
     "entities": ["서울", "부산"]}

``entities`` are the names filled into the template (people, places, works), as drawn: no
particle, in slot order. Attributes ("population") and categories ("airports") are not names.
``data.holdout_by: entity`` keeps every held-out question's names out of training.

The same seed always gives a byte-identical file.

Usage::

    python scripts/make_teaching_set.py [--seed N] [--per-template N] [--out PATH]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qdlib.files import write_jsonl

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "teaching" / "decompose_teach.jsonl"
DEFAULT_PER_TEMPLATE = 90
MAX_TRIES_PER_RECORD = 50

Value = str | dict[str, str]
Pool = tuple[Value, ...]
# The pools whose values are names (a record's "entities"); the others are attributes or categories.
NAME_POOLS = frozenset(
    {"person", "city", "country", "book", "film", "mountain", "river", "university"}
)


@dataclass(frozen=True)
class Template:
    """One question pattern and the sub-question patterns it decomposes into.

    ``slots`` maps a placeholder name to the pool it is drawn from. Placeholders are
    ``{name}``, ``{name.key}`` for attribute pools (dicts), and ``{name|이/가}`` to append
    the Korean particle that fits the last syllable of the value.
    """

    name: str
    kind: str
    slots: tuple[tuple[str, str], ...]
    question: str
    steps: tuple[str, ...]


def _split(text: str) -> Pool:
    """Split a ';'-separated list of entity names."""
    return tuple(part.strip() for part in text.split(";") if part.strip())


def _attrs(*rows: tuple[str, ...], keys: tuple[str, ...] = ("wh", "attr")) -> Pool:
    """Build an attribute pool of dicts from tuples."""
    return tuple(dict(zip(keys, row, strict=True)) for row in rows)


# --------------------------------------------------------------------------- English pools

EN_POOLS: dict[str, Pool] = {
    "person": _split(
        "Albert Einstein; Isaac Newton; Marie Curie; Wolfgang Amadeus Mozart; "
        "Ludwig van Beethoven; William Shakespeare; Pablo Picasso; Napoleon Bonaparte; "
        "Abraham Lincoln; Mahatma Gandhi; Leonardo da Vinci; Charles Darwin; Galileo Galilei; "
        "Frida Kahlo; Nelson Mandela; Confucius; King Sejong; Yi Sun-sin; Jane Austen; "
        "Leo Tolstoy; Vincent van Gogh; Frederic Chopin; Nikola Tesla; Ada Lovelace; "
        "Johann Sebastian Bach; Miguel de Cervantes; Hans Christian Andersen; Simon Bolivar; "
        "Alan Turing; Florence Nightingale"
    ),
    "city": _split(
        "Seoul; Busan; Tokyo; Osaka; Beijing; Shanghai; Paris; London; Berlin; Madrid; Rome; "
        "Cairo; Lagos; Sydney; Toronto; Chicago; Mumbai; Jakarta; Istanbul; Moscow; Lima; "
        "Bogota; Nairobi; Hanoi; Bangkok; Manila; Vienna; Prague; Dublin; Lisbon"
    ),
    "country": _split(
        "South Korea; Japan; China; India; France; Germany; Spain; Italy; Switzerland; "
        "Belgium; Canada; Mexico; Brazil; Argentina; Peru; Chile; Egypt; Kenya; Nigeria; "
        "South Africa; Australia; New Zealand; Vietnam; Thailand; Indonesia; Norway; Sweden; "
        "Finland; Poland; Mongolia"
    ),
    "book": _split(
        "Hamlet; Macbeth; Moby-Dick; War and Peace; Anna Karenina; Don Quixote; "
        "Pride and Prejudice; Emma; Jane Eyre; Wuthering Heights; Great Expectations; "
        "Oliver Twist; Les Miserables; Madame Bovary; Crime and Punishment; The Trial; "
        "Ulysses; Dracula; Frankenstein; Middlemarch; Beloved; Walden; Faust; "
        "The Little Prince; Little Women; Treasure Island"
    ),
    "film": _split(
        "Parasite; Oldboy; Titanic; Inception; Amelie; Spirited Away; Roma; Jaws; Alien; "
        "Vertigo; Casablanca; Psycho; Rashomon; Metropolis; Amadeus; Gladiator; Avatar; "
        "Memento; Arrival; Whiplash; Coco; Moonlight; Birdman; Gravity; Interstellar; "
        "Chinatown; Minari"
    ),
    "mountain": _split(
        "Mount Everest; K2; Kangchenjunga; Lhotse; Makalu; Annapurna; Nanga Parbat; Denali; "
        "Aconcagua; Kilimanjaro; Mont Blanc; Matterhorn; Mount Fuji; Mount Elbrus; "
        "Mount Kenya; Mount Olympus; Mount Etna; Mount Rainier; Mount Whitney; Mount Cook; "
        "Mount Kosciuszko; Mount Vinson; Mount Ararat; Hallasan; Jirisan; Seoraksan"
    ),
    "river": _split(
        "the Nile; the Amazon; the Yangtze; the Mississippi; the Danube; the Rhine; the Volga; "
        "the Mekong; the Ganges; the Thames; the Seine; the Congo; the Niger; the Zambezi; "
        "the Yukon; the Indus; the Tigris; the Euphrates; the Loire; the Elbe; the Orinoco; "
        "the Murray; the Han River; the Nakdong River; the Yellow River; the Ob"
    ),
    "university": _split(
        "Harvard University; Yale University; Princeton University; Stanford University; "
        "Columbia University; Cornell University; Duke University; Brown University; MIT; "
        "Caltech; Seoul National University; Korea University; Yonsei University; "
        "Ewha Womans University; KAIST; POSTECH; the University of Tokyo; Kyoto University; "
        "Peking University; Tsinghua University; the University of Oxford; "
        "the University of Cambridge; Heidelberg University; McGill University; "
        "the University of Toronto; the University of Melbourne"
    ),
    "city_attr": _attrs(
        ("What", "population"),
        ("What", "area"),
        ("Who", "mayor"),
        ("What", "main airport"),
        ("What", "oldest university"),
        ("What", "tallest building"),
        ("What", "largest park"),
        ("What", "main train station"),
    ),
    "country_attr": _attrs(
        ("What", "capital"),
        ("What", "currency"),
        ("What", "official language"),
        ("What", "population"),
        ("Who", "head of state"),
        ("What", "national anthem"),
    ),
    "author_attr": _attrs(
        ("What", "birth year"),
        ("What", "hometown"),
        ("What", "first book"),
        ("What", "native language"),
        ("Who", "teacher"),
        ("Who", "spouse"),
    ),
    "thing": _split(
        "airports; universities; national parks; islands; World Heritage Sites; official languages"
    ),
    "measure": _attrs(("population", "populations"), ("area", "areas"), keys=("attr", "plural")),
}

EN_TEMPLATES: tuple[Template, ...] = (
    Template(
        "bridge_birth_city",
        "bridge",
        (("a", "city_attr"), ("p", "person")),
        "{a.wh} is the {a.attr} of the city where {p} was born?",
        ("In which city was {p} born?", "{a.wh} is the {a.attr} of that city?"),
    ),
    Template(
        "bridge_author",
        "bridge",
        (("a", "author_attr"), ("b", "book")),
        "{a.wh} is the {a.attr} of the author of {b}?",
        ("Who is the author of {b}?", "{a.wh} is the {a.attr} of that author?"),
    ),
    Template(
        "bridge3_capital",
        "bridge",
        (("a", "city_attr"), ("p", "person")),
        "{a.wh} is the {a.attr} of the capital of the country where {p} was born?",
        (
            "In which country was {p} born?",
            "What is the capital of that country?",
            "{a.wh} is the {a.attr} of that city?",
        ),
    ),
    Template(
        "bridge3_director",
        "bridge",
        (("a", "country_attr"), ("f", "film")),
        "{a.wh} is the {a.attr} of the country where the director of {f} was born?",
        (
            "Who directed {f}?",
            "In which country was that director born?",
            "{a.wh} is the {a.attr} of that country?",
        ),
    ),
    Template(
        "compare_city",
        "comparison",
        (("m", "measure"), ("c1", "city"), ("c2", "city")),
        "Which city has a larger {m.attr}, {c1} or {c2}?",
        (
            "What is the {m.attr} of {c1}?",
            "What is the {m.attr} of {c2}?",
            "Which of the two {m.plural} is larger?",
        ),
    ),
    Template(
        "compare_mountain",
        "comparison",
        (("m1", "mountain"), ("m2", "mountain")),
        "Which mountain is higher, {m1} or {m2}?",
        ("How high is {m1}?", "How high is {m2}?", "Which of the two heights is greater?"),
    ),
    Template(
        "intersect_language",
        "intersection",
        (("c1", "country"), ("c2", "country")),
        "Which languages are spoken in both {c1} and {c2}?",
        (
            "Which languages are spoken in {c1}?",
            "Which languages are spoken in {c2}?",
            "Which languages are in both lists?",
        ),
    ),
    Template(
        "intersect_actor",
        "intersection",
        (("f1", "film"), ("f2", "film")),
        "Which actors appeared in both {f1} and {f2}?",
        (
            "Which actors appeared in {f1}?",
            "Which actors appeared in {f2}?",
            "Which actors are in both lists?",
        ),
    ),
    Template(
        "count_items",
        "aggregation",
        (("t", "thing"), ("c", "country")),
        "How many {t} are there in {c}?",
        ("Which {t} are there in {c}?", "How many {t} are in that list?"),
    ),
    Template(
        "sum_three",
        "aggregation",
        (("m", "measure"), ("c1", "city"), ("c2", "city"), ("c3", "city")),
        "What is the total {m.attr} of {c1}, {c2} and {c3}?",
        (
            "What is the {m.attr} of {c1}?",
            "What is the {m.attr} of {c2}?",
            "What is the {m.attr} of {c3}?",
            "What is the sum of the three values?",
        ),
    ),
    Template(
        "superlative_river",
        "superlative",
        (("r1", "river"), ("r2", "river"), ("r3", "river")),
        "Which is the longest river among {r1}, {r2} and {r3}?",
        (
            "How long is {r1}?",
            "How long is {r2}?",
            "How long is {r3}?",
            "Which of the three lengths is the greatest?",
        ),
    ),
    Template(
        "first_founded",
        "temporal",
        (("u1", "university"), ("u2", "university")),
        "Which was founded first, {u1} or {u2}?",
        (
            "In what year was {u1} founded?",
            "In what year was {u2} founded?",
            "Which of the two years is earlier?",
        ),
    ),
    Template(
        "years_between",
        "temporal",
        (("p1", "person"), ("p2", "person")),
        "How many years apart were {p1} and {p2} born?",
        (
            "In what year was {p1} born?",
            "In what year was {p2} born?",
            "How many years are there between the two years?",
        ),
    ),
    Template(
        "yesno_river",
        "yesno",
        (("r1", "river"), ("r2", "river")),
        "Is {r1} longer than {r2}?",
        ("How long is {r1}?", "How long is {r2}?", "Is the first length greater than the second?"),
    ),
)

# ---------------------------------------------------------------------------- Korean pools

KO_POOLS: dict[str, Pool] = {
    "person": _split(
        "세종대왕; 이순신; 김구; 안중근; 유관순; 정약용; 신사임당; 장영실; 허준; 김정호; "
        "윤동주; 김소월; 한용운; 안창호; 이황; 이이; 김홍도; 신윤복; 아인슈타인; 뉴턴; "
        "퀴리 부인; 모차르트; 베토벤; 셰익스피어; 피카소; 나폴레옹; 링컨; 간디; 다윈; 갈릴레이"
    ),
    "city": _split(
        "서울; 부산; 대구; 인천; 광주; 대전; 울산; 세종; 수원; 창원; 고양; 용인; 청주; 전주; "
        "천안; 포항; 제주; 강릉; 춘천; 원주; 경주; 안동; 목포; 여수; 도쿄; 오사카; 베이징; "
        "상하이; 파리; 런던"
    ),
    "country": _split(
        "한국; 일본; 중국; 인도; 프랑스; 독일; 스페인; 이탈리아; 스위스; 벨기에; 캐나다; "
        "멕시코; 브라질; 아르헨티나; 페루; 칠레; 이집트; 케냐; 나이지리아; 남아프리카 공화국; "
        "호주; 뉴질랜드; 베트남; 태국; 인도네시아; 노르웨이; 스웨덴; 핀란드; 폴란드; 몽골"
    ),
    "book": _split(
        "토지; 태백산맥; 혼불; 무정; 상록수; 운수 좋은 날; 메밀꽃 필 무렵; 소나기; 광장; "
        "채식주의자; 82년생 김지영; 아리랑; 탁류; 삼대; 감자; 날개; 봄봄; 동백꽃; "
        "원미동 사람들; 칼의 노래; 남한산성; 나목; 객주; 장길산; 임꺽정; 구운몽"
    ),
    "film": _split(
        "기생충; 올드보이; 살인의 추억; 괴물; 왕의 남자; 명량; 국제시장; 택시운전사; 부산행; "
        "암살; 베테랑; 극한직업; 서편제; 쉬리; 타짜; 아가씨; 밀양; 버닝; 추격자; 관상; "
        "변호인; 광해; 해운대; 실미도; 친구; 미나리; 헤어질 결심; 마더"
    ),
    "mountain": _split(
        "한라산; 지리산; 설악산; 백두산; 덕유산; 태백산; 오대산; 소백산; 계룡산; 속리산; "
        "북한산; 내장산; 월악산; 치악산; 가야산; 주왕산; 무등산; 월출산; 금강산; 묘향산; "
        "칠보산; 에베레스트산; 후지산; 킬리만자로산; 몽블랑산; 엘브루스산"
    ),
    "river": _split(
        "한강; 낙동강; 금강; 영산강; 섬진강; 임진강; 대동강; 압록강; 두만강; 청천강; 북한강; "
        "남한강; 나일강; 아마존강; 양쯔강; 미시시피강; 도나우강; 라인강; 볼가강; 메콩강; "
        "갠지스강; 템스강; 센강; 인더스강; 콩고강; 황허강"
    ),
    "university": _split(
        "서울대학교; 고려대학교; 연세대학교; 이화여자대학교; 성균관대학교; 한양대학교; "
        "서강대학교; 중앙대학교; 경희대학교; 한국외국어대학교; 부산대학교; 경북대학교; "
        "전남대학교; 충남대학교; 전북대학교; 강원대학교; 제주대학교; 포항공과대학교; "
        "한국과학기술원; 숙명여자대학교; 동국대학교; 건국대학교; 홍익대학교; 인하대학교; "
        "하버드 대학교; 옥스퍼드 대학교"
    ),
    "city_attr": _attrs(
        ("얼마인가", "인구"),
        ("얼마인가", "면적"),
        ("누구인가", "시장"),
        ("어디인가", "대표 공항"),
        ("어디인가", "가장 오래된 대학"),
        ("무엇인가", "가장 높은 건물"),
        ("어디인가", "가장 큰 공원"),
        ("어디인가", "중앙역"),
    ),
    "country_attr": _attrs(
        ("어디인가", "수도"),
        ("무엇인가", "화폐"),
        ("무엇인가", "공용어"),
        ("얼마인가", "인구"),
        ("누구인가", "국가 원수"),
        ("무엇인가", "국화"),
    ),
    "author_attr": _attrs(
        ("어디인가", "고향"),
        ("언제인가", "출생 연도"),
        ("무엇인가", "첫 작품"),
        ("무엇인가", "대표작"),
        ("어디인가", "출신 학교"),
        ("누구인가", "스승"),
    ),
    "thing": _split("공항; 대학교; 국립공원; 섬; 세계유산; 고속도로"),
    "measure": _attrs(("인구", "많은"), ("면적", "넓은"), keys=("attr", "adj")),
}

KO_TEMPLATES: tuple[Template, ...] = (
    Template(
        "bridge_birth_city",
        "bridge",
        (("a", "city_attr"), ("p", "person")),
        "{p|이/가} 태어난 도시의 {a.attr|은/는} {a.wh}?",
        ("{p|은/는} 어느 도시에서 태어났는가?", "그 도시의 {a.attr|은/는} {a.wh}?"),
    ),
    Template(
        "bridge_author",
        "bridge",
        (("a", "author_attr"), ("b", "book")),
        "소설 {b|을/를} 쓴 작가의 {a.attr|은/는} {a.wh}?",
        ("소설 {b|을/를} 쓴 작가는 누구인가?", "그 작가의 {a.attr|은/는} {a.wh}?"),
    ),
    Template(
        "bridge3_capital",
        "bridge",
        (("a", "city_attr"), ("p", "person")),
        "{p|이/가} 태어난 나라의 수도는 {a.attr|이/가} {a.wh}?",
        (
            "{p|은/는} 어느 나라에서 태어났는가?",
            "그 나라의 수도는 어디인가?",
            "그 도시의 {a.attr|은/는} {a.wh}?",
        ),
    ),
    Template(
        "bridge3_director",
        "bridge",
        (("a", "country_attr"), ("f", "film")),
        "영화 {f|을/를} 연출한 감독이 태어난 나라의 {a.attr|은/는} {a.wh}?",
        (
            "영화 {f|을/를} 연출한 감독은 누구인가?",
            "그 감독은 어느 나라에서 태어났는가?",
            "그 나라의 {a.attr|은/는} {a.wh}?",
        ),
    ),
    Template(
        "compare_city",
        "comparison",
        (("m", "measure"), ("c1", "city"), ("c2", "city")),
        "{c1|과/와} {c2} 중 {m.attr|이/가} 더 {m.adj} 도시는?",
        (
            "{c1}의 {m.attr|은/는} 얼마인가?",
            "{c2}의 {m.attr|은/는} 얼마인가?",
            "두 {m.attr} 중 어느 쪽이 더 큰가?",
        ),
    ),
    Template(
        "compare_mountain",
        "comparison",
        (("m1", "mountain"), ("m2", "mountain")),
        "{m1|과/와} {m2} 중 더 높은 산은?",
        ("{m1}의 높이는 얼마인가?", "{m2}의 높이는 얼마인가?", "두 높이 중 어느 쪽이 더 높은가?"),
    ),
    Template(
        "intersect_language",
        "intersection",
        (("c1", "country"), ("c2", "country")),
        "{c1|과/와} {c2}에서 모두 쓰이는 언어는?",
        (
            "{c1}에서 쓰이는 언어는 무엇인가?",
            "{c2}에서 쓰이는 언어는 무엇인가?",
            "두 목록에 모두 있는 언어는 무엇인가?",
        ),
    ),
    Template(
        "intersect_actor",
        "intersection",
        (("f1", "film"), ("f2", "film")),
        "영화 {f1|과/와} {f2}에 모두 출연한 배우는 누구인가?",
        (
            "영화 {f1}에 출연한 배우는 누구인가?",
            "영화 {f2}에 출연한 배우는 누구인가?",
            "두 목록에 모두 있는 배우는 누구인가?",
        ),
    ),
    Template(
        "count_items",
        "aggregation",
        (("t", "thing"), ("c", "country")),
        "{c}에는 {t|이/가} 몇 개 있는가?",
        ("{c}에는 어떤 {t|이/가} 있는가?", "그 {t|은/는} 모두 몇 개인가?"),
    ),
    Template(
        "sum_three",
        "aggregation",
        (("m", "measure"), ("c1", "city"), ("c2", "city"), ("c3", "city")),
        "{c1}, {c2}, {c3}의 {m.attr|을/를} 모두 합하면 얼마인가?",
        (
            "{c1}의 {m.attr|은/는} 얼마인가?",
            "{c2}의 {m.attr|은/는} 얼마인가?",
            "{c3}의 {m.attr|은/는} 얼마인가?",
            "세 값을 모두 합하면 얼마인가?",
        ),
    ),
    Template(
        "superlative_river",
        "superlative",
        (("r1", "river"), ("r2", "river"), ("r3", "river")),
        "{r1}, {r2}, {r3} 중 가장 긴 강은?",
        (
            "{r1}의 길이는 얼마인가?",
            "{r2}의 길이는 얼마인가?",
            "{r3}의 길이는 얼마인가?",
            "세 길이 중 어느 것이 가장 긴가?",
        ),
    ),
    Template(
        "first_founded",
        "temporal",
        (("u1", "university"), ("u2", "university")),
        "{u1|과/와} {u2} 중 먼저 세워진 대학은?",
        (
            "{u1|은/는} 몇 년에 세워졌는가?",
            "{u2|은/는} 몇 년에 세워졌는가?",
            "두 해 중 어느 해가 더 이른가?",
        ),
    ),
    Template(
        "years_between",
        "temporal",
        (("p1", "person"), ("p2", "person")),
        "{p1|과/와} {p2}의 출생 연도는 몇 년 차이인가?",
        (
            "{p1|은/는} 몇 년에 태어났는가?",
            "{p2|은/는} 몇 년에 태어났는가?",
            "두 해의 차이는 몇 년인가?",
        ),
    ),
    Template(
        "yesno_river",
        "yesno",
        (("r1", "river"), ("r2", "river")),
        "{r1|은/는} {r2}보다 긴가?",
        (
            "{r1}의 길이는 얼마인가?",
            "{r2}의 길이는 얼마인가?",
            "{r1}의 길이가 {r2}의 길이보다 긴가?",
        ),
    ),
)

LANGS: tuple[tuple[str, dict[str, Pool], tuple[Template, ...]], ...] = (
    ("en", EN_POOLS, EN_TEMPLATES),
    ("ko", KO_POOLS, KO_TEMPLATES),
)

# --------------------------------------------------------------------------------- helpers

_PLACEHOLDER = re.compile(r"\{(\w+)(?:\.(\w+))?(?:\|([^}]+))?\}")
_HANGUL_FIRST, _HANGUL_COUNT = 0xAC00, 11172
_RIEUL = 8  # index of the final consonant ㄹ


def josa(word: str, pair: str) -> str:
    """Return the Korean particle from ``pair`` ("이/가", "은/는", ...) that fits ``word``."""
    with_final, without_final = pair.split("/")
    code = ord(word[-1]) - _HANGUL_FIRST
    if not 0 <= code < _HANGUL_COUNT:
        raise ValueError(f"cannot choose a particle for {word!r}: last character is not Hangul")
    final = code % 28
    if pair == "으로/로" and final == _RIEUL:
        return without_final
    return with_final if final else without_final


def render(pattern: str, values: dict[str, Value]) -> str:
    """Fill ``{name}``, ``{name.key}`` and ``{name|josa}`` placeholders."""

    def fill(match: re.Match[str]) -> str:
        name, key, pair = match.groups()
        value = values[name]
        text = value[key] if isinstance(value, dict) else value
        return text + josa(text, pair) if pair else text

    return _PLACEHOLDER.sub(fill, pattern)


def draw_values(rng: random.Random, template: Template, pools: dict[str, Pool]) -> dict[str, Value]:
    """Draw one value per slot; slots that share a pool get distinct values."""
    values: dict[str, Value] = {}
    for slot, pool_name in template.slots:
        used = [values[s] for s, p in template.slots if p == pool_name and s in values]
        values[slot] = rng.choice([v for v in pools[pool_name] if v not in used])
    return values


def make_record(lang: str, template: Template, values: dict[str, Value], n: int) -> dict:
    """Build one output record."""
    return {
        "id": f"{lang}-{template.name}-{n}",
        "question": render(template.question, values),
        "sub_questions": [render(step, values) for step in template.steps],
        "template": template.name,
        "kind": template.kind,
        "lang": lang,
        "source": "synthetic",
        "entities": [values[slot] for slot, pool in template.slots if pool in NAME_POOLS],
    }


def generate_template(
    rng: random.Random,
    lang: str,
    template: Template,
    pools: dict[str, Pool],
    count: int,
    seen: set[str],
) -> list[dict]:
    """Draw up to ``count`` records with questions not yet in ``seen``."""
    records: list[dict] = []
    for _ in range(count * MAX_TRIES_PER_RECORD):
        if len(records) == count:
            break
        record = make_record(lang, template, draw_values(rng, template, pools), len(records))
        if record["question"] not in seen:
            seen.add(record["question"])
            records.append(record)
    if len(records) < count:
        print(f"warning: {lang}-{template.name}: only {len(records)} unique", file=sys.stderr)
    return records


def generate(seed: int = 0, per_template: int = DEFAULT_PER_TEMPLATE) -> list[dict]:
    """Generate the whole teaching set, shuffled deterministically."""
    rng = random.Random(seed)
    seen: set[str] = set()
    records: list[dict] = []
    for lang, pools, templates in LANGS:
        for template in templates:
            records += generate_template(rng, lang, template, pools, per_template, seen)
    rng.shuffle(records)
    return records


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--per-template",
        type=int,
        default=DEFAULT_PER_TEMPLATE,
        help=f"records per template and language (default: {DEFAULT_PER_TEMPLATE})",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output JSONL path (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.per_template < 1:
        parser.error("--per-template must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the set, write it and print a short summary."""
    args = parse_args(argv)
    records = generate(args.seed, args.per_template)
    write_jsonl(args.out, records)
    langs = Counter(r["lang"] for r in records)
    summary = ", ".join(f"{lang}={n}" for lang, n in sorted(langs.items()))
    print(f"wrote {len(records)} records ({summary}) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
