"""Word lists and caption templates of the built-in archive: names, places, organisations, events, and the
formulaic template families that make captions alike across stories."""

from __future__ import annotations

FIRST = (
    "John Mary William Helen James Margaret George Dorothy Charles Ruth Robert Mildred Joseph Frances Frank "
    "Edith Edward Alice Thomas Florence Walter Evelyn Harold Marie Henry Irene Paul Louise Arthur Martha Albert "
    "Grace Raymond Lillian Harry Anna Clarence Gladys Fred Ethel Richard Virginia Roy Catherine Louis Josephine "
    "Earl Hazel Ralph Doris Carl Elizabeth Howard Bernice Herbert Esther Leonard Marjorie Ernest Agnes Eugene "
    "Pauline Lawrence Vera Kenneth Lucille Samuel Beatrice Norman Eleanor Chester Rose Elmer Viola Francis Edna"
).split()
LAST = (
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin Jackson "
    "Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams Baker "
    "Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans Edwards Collins Stewart Morris Murphy "
    "Cook Rogers Morgan Cooper Peterson Reed Bailey Bell Kelly Howard Ward Cox Richardson Wood Watson Brooks "
    "Bennett Gray Hughes Price Sanders Myers Long Ross Foster Powell Jenkins Perry Russell Sullivan Fisher "
    "Henderson Coleman Simmons Patterson Jordan Reynolds Hamilton Graham Wallace Gibson Ellis Hoffman Schultz "
    "Kowalski Nowak Lindqvist Olsen Gallagher Donnelly Moretti Castillo Fontaine Brennan Whitfield Ashby"
).split()
CITY_STATE = (
    "Chicago Illinois|Boston Massachusetts|Denver Colorado|Omaha Nebraska|Dallas Texas|Atlanta Georgia|"
    "Seattle Washington|Portland Oregon|Tulsa Oklahoma|Toledo Ohio|Dayton Ohio|Akron Ohio|Memphis Tennessee|"
    "Nashville Tennessee|Richmond Virginia|Norfolk Virginia|Topeka Kansas|Wichita Kansas|Des Moines Iowa|"
    "Duluth Minnesota|St. Paul Minnesota|Madison Wisconsin|Milwaukee Wisconsin|Detroit Michigan|Flint Michigan|"
    "Albany New York|Buffalo New York|Trenton New Jersey|Newark New Jersey|Hartford Connecticut|Providence Rhode "
    "Island|Baltimore Maryland|Raleigh North Carolina|Charleston South Carolina|Savannah Georgia|Mobile Alabama|"
    "Birmingham Alabama|Jackson Mississippi|Little Rock Arkansas|Shreveport Louisiana|Austin Texas|El Paso Texas|"
    "Phoenix Arizona|Tucson Arizona|Reno Nevada|Boise Idaho|Helena Montana|Fargo North Dakota|Sioux Falls South "
    "Dakota|Cheyenne Wyoming|Santa Fe New Mexico|Sacramento California|Fresno California|San Diego California|"
    "Spokane Washington|Lincoln Nebraska|Springfield Illinois|Peoria Illinois|Evansville Indiana|Gary Indiana|"
    "Louisville Kentucky|Lexington Kentucky|Scranton Pennsylvania|Erie Pennsylvania|Wheeling West Virginia"
).split("|")
# Composed names. A real archive names hundreds of thousands of people and thousands of towns; with only the
# common lists above, every name n-gram would be shared by thousands of captions at 100k rows, and Jaccard (and
# text models) would see unrelated stories as reprints. Names are built from fixed part tables (no RNG), so
# a seed still reproduces the archive; a quarter of the draws use the common lists, so frequent names exist.
_SUR_HEAD = (
    "Ab Ash Bal Bar Beck Bell Black Bran Brook Burk Cal Carl Chap Ches Cor Cran Dal Dav Dunn Eck Ell Fair Fen "
    "Fitz Ful Gar Gil Glad Gold Gor Hal Ham Hart Haw Hol Hum Ing Jen Kell Ken Kirk Lam Lang Lind Lock Mal Mar "
    "Mer Mil Mon Nor Oak Or Pem Pen Pres Quin Rad Ram Red Rich Ros Rut Sal Sand Sher Stan Stock Strat Sum Tal "
    "Thorn Tren Val Vaughn Wad Wal War Well Whit Wil Win Wolf Wood Yar"
).split()
_SUR_TAIL = (
    "ard berg bert bury by combe dale den ell er ett field ford gan gate ham hurst ing ington ins kin land ler "
    "ley ling low man mann more ner ney ning ridge sen ski son stead stein ston ter ton vale well wick win wood "
    "worth"
).split()
_FIRST_HEAD = "Al Ber Cal Del El Fer Ger Hil Is Jo La Le Lo Ma Mel Na Or Ro Ros Sel Ter Vi Wil".split()
_FIRST_TAIL = "bert don fred ma mer na ra rence ton vin wood lie ette ine".split()
_TOWN_HEAD = (
    "Ash Bay Bear Beech Bell Birch Black Bloom Brook Cedar Clear Clay Cold Crown Deer Eagle East Elm Fair Fox "
    "Glen Gold Green Hazel Hill Holly Lake Laurel Lime Maple Marsh Mill Moss New North Oak Pine Pleasant Plum "
    "Red River Rock Rose Sand Silver Spring Stone Sugar Sun Walnut West White Willow Wolf"
).split()
_TOWN_TAIL = "boro brook burg dale field ford grove ham haven land mont port ridge ton vale view ville water wood".split()
COMPOSED_LAST = tuple(h + t for h in _SUR_HEAD for t in _SUR_TAIL)
COMPOSED_FIRST = tuple(h + t for h in _FIRST_HEAD for t in _FIRST_TAIL)
COMPOSED_TOWNS = tuple(h + t for h in _TOWN_HEAD for t in _TOWN_TAIL)
COMMON_P = 0.25  # a name is drawn from the common lists; otherwise from the composed ones

ORGS = (
    "State Highway Commission|Chamber of Commerce|American Legion|Red Cross|Federal Power Commission|"
    "Board of Education|Rotary Club|Farm Bureau|Interstate Commerce Commission|National Guard|"
    "Bar Association|Medical Society|Steel Workers Union|Railroad Brotherhood|Women's Club|Historical Society|"
    "Public Service Commission|Civil Aeronautics Board|Atomic Energy Commission|Weather Bureau|Park Service|"
    "Reclamation Bureau|Tariff Commission|Parent-Teacher Association|Kiwanis Club|Garden Club|"
    "Community Chest|Boy Scouts|Girl Scouts|Veterans Administration|Labor Department|Navy Department|"
    "War Department|Treasury Department|Supreme Court|Senate Finance Committee|House Rules Committee|"
    "Securities Commission|Coal Operators Association|Teachers College"
).split("|")
ROLES = (
    "president|secretary|chairman|director|treasurer|commissioner|superintendent|governor|mayor|senator|"
    "congressman|judge|general manager|chief engineer|vice president|executive secretary|dean|coach|"
    "ambassador|admiral|colonel|bishop|professor|inspector"
).split("|")
TITLES = ("Mr.", "Mrs.", "Miss", "Dr.", "Gov.", "Sen.", "Rep.", "Judge", "Gen.", "Col.", "Prof.", "Rev.")
EVENTS = (
    "county fair|flood|tornado|parade|strike|dedication|convention|rodeo|blizzard|bridge opening|airshow|"
    "harvest festival|train wreck|fire|dam completion|dust storm|regatta|track meet|homecoming|ice jam|"
    "mine rescue|bond rally|centennial|oil strike|circus|auto race|drought|earthquake|eclipse|launching"
).split("|")
VERBS = (
    "was named|was elected|was appointed|resigned|was honored|spoke|arrived|testified|announced plans|"
    "was nominated|took office|retired|was re-elected|was promoted|was sworn in|accepted the post|"
    "returned home|was welcomed|was decorated|was injured"
).split("|")
THINGS = (
    "highway program|school bond issue|new hospital|water project|tax measure|power plant|airport expansion|"
    "relief fund|housing plan|farm bill|rail merger|wage agreement|budget|peace plan|treaty|trade pact|"
    "flood control plan|reforestation project|library addition|stadium"
).split("|")
CROWD = ("persons", "spectators", "residents", "visitors", "delegates", "workers", "farmers", "students")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January February March April May June July August September October November December").split()
MASTHEADS = ("Herald", "Gazette", "Courier", "Tribune", "Evening Star", "Daily News", "Journal", "Sentinel",
             "Register", "Times", "Post", "Enterprise", "Leader", "Record", "Advocate", "Bulletin")
WIRES = ("AP", "UP", "INS", "NEA", "Wide World", "Acme")

EXTRA = (
    "The {org} will meet again {weekday} to consider the {thing}.",
    "He is a native of {city2} and a graduate of the state university.",
    "She has been active in {org2} work for {num} years.",
    "Officials said the {thing} would cost about ${money} million.",
    "Approximately {num} {crowd} attended the ceremonies.",
    "The announcement was made by {first2} {last2}, {role2} of the {org2}.",
    "{last} succeeds {first2} {last2}, who retired last {month}.",
    "Work on the {thing} is expected to begin in {month}.",
    "The vote was {num} to {num2}.",
    "Friends said {last} had been in poor health since {month}.",
    "Damage was estimated at ${money},000 by {city} authorities.",
    "The {event} was the largest in the history of {city}.",
    "Photo shows {last} at {weekday}'s session of the {org}.",
    "A reception in honor of {last} will be held at the {org2} hall.",
    "Traffic was halted for {num} hours on the main highway near {city2}.",
    "Both houses of the legislature approved the {thing} without debate.",
    "The family moved to {city} from {city2} in {year}.",
    "{num} members of the {org2} attended the luncheon.",
    "Rain delayed the opening of the {event} for {num2} hours.",
    "Federal funds will pay half the cost of the {thing}.",
)

# Formulaic families: the wording is fixed, only the slots differ (a real archive's "same template" confounder).
FORMULAIC = {
    "portrait": (
        "Miss {first} {last}, daughter of Mr. and Mrs. {first2} {last} of {city}, whose engagement to {first3} "
        "{last3} has been announced. The wedding will take place in {month}.",
        "{title} {first} {last}, {age}, {role} of the {org} for many years, died {weekday} at his home in "
        "{city}. Funeral services will be held {weekday2}.",
        "{first} {last} of {city}, who has been appointed {role} of the {org}. He succeeds {first2} {last2}.",
        "Mrs. {first} {last} of {city}, newly elected president of the state {org}, will preside at the "
        "convention in {city2} in {month}.",
    ),
    "scene": (
        "Scene at {city} as the {event} drew a crowd of {num},000 {crowd} on {weekday}. The {org} sponsored "
        "the program.",
        "{city} high school defeated {city2} {num} to {num2} in the state championship game {weekday} night.",
    ),
    "map": (
        "Map locates {city}, {state}, where the {event} struck {weekday}. Arrow points to the area of heaviest "
        "damage.",
        "Shaded area on map shows the region of {state} covered by the {thing} approved {weekday} by the {org}.",
    ),
    "headline": (
        "The {org} {verb} {weekday} on the {thing}, {first} {last}, {role}, told reporters in {city}.",
    ),
}
LEADS = {
    "portrait": (
        "{title} {first} {last}, {role} of the {org}, {verb} {weekday} in {city}.",
        "{first} {last} of {city}, {state}, {verb} {role} of the {org} at a meeting {weekday}.",
        "{title} {first} {last}, {age}, {verb} at the annual session of the {org} in {city}.",
        "Pictured is {first} {last}, {role}, who {verb} by the {org} this week.",
    ),
    "scene": (
        "{num},000 {crowd} watched the {event} at {city}, {state}, on {weekday}.",
        "The {event} at {city} brought out {num},000 {crowd} as the {org} opened its {thing} drive.",
        "Workmen at {city} cleared wreckage {weekday} after the {event} swept the {state} town.",
        "A view of the {event} near {city}, where the {org} is directing relief.",
    ),
    "map": (
        "Map shows the route of the proposed {thing} from {city} to {city2}, {state}.",
        "Heavy line on map traces the path of the {event} across {state} from {city} to {city2}.",
        "Area around {city}, {state}, affected by the {event}, is shown in black on the map.",
    ),
    "headline": (
        "{title} {first} {last} {verb} {weekday} as the {org} took up the {thing} in {city}.",
        "{first} {last}, {role} of the {org}, {verb} in {city} after the {thing} was approved.",
        "The {org} announced {weekday} in {city} that {first} {last} {verb} {role}.",
    ),
}
