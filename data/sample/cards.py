"""The writing plan behind the embedded corpora: one card per document, drawn before it was written.

TinyStories-style diversity by construction: every plot in `plots.txt` after the first 220, and
every ghost story in `ghost-stories.txt` after the first 50, was written to one of these cards
(genre, period, place, tone, how the plot opens, who it follows, how it ends, three concrete
nouns to use, a length). Re-drawing them is deterministic:

    python data/sample/cards.py plots 1000 --seed 26 > cards.md
"""
import argparse
import random

GENRES = """western; film noir; screwball comedy; war drama; family adventure; sports drama;
hard science fiction; space opera; slasher horror; folk horror; disaster film; monster movie;
cyberpunk thriller; heist caper; Cold War spy thriller; courtroom drama; historical epic;
martial arts film; country-house whodunit; coming-of-age drama; backstage musical; fantasy quest;
family melodrama; road movie; silent slapstick comedy; romantic comedy; political thriller;
animated children's film; mockumentary; psychological thriller; survival drama; time-travel
adventure; medical drama; gangster film; samurai film; Bollywood masala film; kaiju film;
Italian giallo; pirate swashbuckler; teen comedy; mountaineering drama; prison drama; boxing film;
dance film; zombie film; supernatural romance; costume romance; political satire; social realist
drama; neo-noir; buddy cop comedy; wuxia; telenovela-style melodrama; post-apocalyptic film;
psychological chamber drama; Christmas comedy; spaghetti western; Hong Kong action
film; Nollywood family drama; French New Wave romance; Korean revenge thriller; Australian outback
thriller; Nordic crime drama; legal comedy; workplace comedy; creature feature; religious epic;
biographical drama of an invented person; submarine thriller; aviation adventure; jungle
adventure; haunted-house film; alien-invasion film; espionage comedy; caper comedy; mob comedy;
small-town mystery; campus comedy; culinary drama; courtroom thriller; revenge western; epic
fantasy; sword-and-sandal film; cop thriller; found-footage horror; techno-thriller; eco-thriller;
dystopian drama; musical comedy; sea adventure; war comedy; resistance drama; immigrant drama;
quiet family drama; circus drama; boarding-school story; chess or games drama; art-heist film;
kidnapping thriller; hostage drama; noir comedy""".replace("\n", " ").split("; ")

PERIODS = """ancient Egypt; ancient Rome; Han dynasty China; the Viking age; the 12th century;
the 14th century; the Renaissance; the 17th century; Edo-period Japan; the 1750s; the 1790s;
the Napoleonic wars; the 1840s; the 1860s; the 1870s; the 1880s; the 1890s; 1900s; 1910s;
the First World War; the 1920s; the 1930s; the Second World War; the late 1940s; the 1950s;
the early 1960s; the late 1960s; the 1970s; the 1980s; the 1990s; the 2000s; the 2010s;
the present day; the present day; the present day; the near future; the 2080s; the 23rd century;
a far future; an invented pre-industrial world; an undated fairy-tale past""".replace("\n", " ").split("; ")

PLACES = """Lagos; Nairobi; Accra; Dakar; Cairo; Marrakesh; Cape Town; Addis Ababa; Kinshasa; Zanzibar;
Istanbul; Tehran; Beirut; Baghdad; Jerusalem; the Arabian desert; Mumbai; Kolkata; Kerala; Punjab;
Lahore; Dhaka; Kathmandu; Colombo; Tibet; Mongolia; Beijing; Shanghai; Hong Kong; Taipei; Seoul;
Busan; Tokyo; Osaka; Hokkaido; Okinawa; Manila; Jakarta; Bali; Bangkok; Hanoi; Saigon; Singapore;
Sydney; Melbourne; the Australian outback; New Zealand; Tahiti; Hawaii; Alaska; Vancouver; Quebec;
Newfoundland; Toronto; New York; Boston; Chicago; Detroit; New Orleans; Texas; Montana; Arizona;
Los Angeles; San Francisco; Seattle; Appalachia; Florida; the Great Plains; Mexico City; Oaxaca;
Havana; Jamaica; Haiti; Colombia; Peru; the Amazon; Rio de Janeiro; Buenos Aires; Patagonia; Chile;
Iceland; Norway; Sweden; Finland; Denmark; Ireland; Scotland; Wales; London; Yorkshire; Cornwall;
Paris; Provence; Brittany; Spain; Lisbon; Naples; Sicily; Venice; Rome; the Alps; Vienna; Berlin;
Bavaria; Prague; Poland; Hungary; Romania; the Balkans; Greece; Ukraine; Moscow; Siberia;
Georgia (the country); Armenia; Kazakhstan; Antarctica; a ship at sea; an island in the Pacific;
a space station; Mars; a generation starship; an invented kingdom; an invented city""".replace("\n", " ").split("; ")

TONES = """grim; whimsical; bittersweet; tense; satirical; farcical; melancholy; hopeful; lurid; gentle;
absurd; romantic; tragic; uplifting; eerie; cynical; nostalgic; frantic; wry; brooding; warm;
suspenseful; pulpy; earnest""".replace("\n", " ").split("; ")

OPENINGS = [
    "the protagonist's name with their job or situation (e.g. 'Retired ferryman Tomas Vik ...')",
    "a place and time ('In 1936 Shanghai, ...' / 'On a sheep station in ...')",
    "an event that starts the story (a death, an arrival, a theft, a letter)",
    "a subordinate clause ('After ...', 'When ...', 'Years after ...', 'Unable to ...')",
    "the antagonist or a threat ('A gang of ...', 'A mysterious illness ...')",
    "an object or place that matters ('The last working cinema in ...')",
    "a group, family or institution ('The Okafor family ...', 'A travelling circus ...')",
    "a framing device (a story told, a trial, a diary, a flashback)",
    "a relationship ('Twin sisters ...', 'Two rival bakers ...')",
    "the film itself ('In this 1950s musical, ...' / 'The film follows ...'), sparingly",
]
OPENING_WEIGHTS = [22, 14, 10, 12, 7, 7, 10, 6, 8, 4]

LEADS = """a child; a teenager; a young woman; a young man; a middle-aged woman; a middle-aged man;
an elderly woman; an elderly man; a married couple; two friends; siblings; a parent and child;
an ensemble of strangers; a pair of rivals; a group of workers; an animal and its owner""".replace("\n", " ").split("; ")

ENDINGS = """happy; tragic; bittersweet; ambiguous; a twist; a victory at a cost; a reconciliation;
an escape; a sacrifice; an ironic reversal; a wedding; a departure""".replace("\n", " ").split("; ")

NOUNS = """accordion; anchor; anvil; apron; aqueduct; atlas; axe; bagpipe; balloon; banjo; barge; barometer;
basket; bathtub; beehive; bell; bicycle; billboard; birdcage; blimp; bonfire; bookcase; boomerang;
bowler hat; bridge; bucket; bulldozer; cactus; camel; camera; canal; candle; cannon; canoe; caravan;
carousel; cart; cassette; cathedral; cello; chandelier; chess set; chimney; clock tower; coat;
coffin; comet; compass; concrete mixer; crane; crossword; crown; crystal; cuckoo clock; dam; diary;
diving suit; dollhouse; donkey; drum; dumbwaiter; elevator; envelope; fan; ferris wheel; ferry;
fiddle; fire engine; fireworks; fishing net; flag; flute; fountain; fridge; funicular; garden;
gas mask; glacier; globe; goat; gondola; gramophone; greenhouse; guitar; hammock; harbour; harp;
hearse; helicopter; helmet; horse; hot-air balloon; hourglass; houseboat; ice rink; icon; jukebox;
kayak; kettle; key; kite; ladder; lantern; laundry; lighthouse; lion; locket; locomotive; loom;
lottery ticket; map; marionette; mask; medal; megaphone; microphone; mill; mine shaft; mirror;
monastery; motorcycle; mule; music box; necklace; newspaper; oar; observatory; orchard; organ;
orphanage; ox; paddle steamer; painting; parachute; parrot; passport; pearl; phonograph; piano;
pickaxe; pigeon; pipe organ; pistol; plough; postcard; printing press; projector; puppet; quilt;
radio; raft; railway; raincoat; record player; refrigerator truck; revolver; rice field; ring;
robot; rocket; rooftop; rope bridge; rowboat; ruby; saddle; sailboat; salt mine; satellite;
saxophone; scarecrow; scooter; scroll; seaplane; sewing machine; sextant; shipwreck; shovel;
sled; slot machine; snow globe; spaceship; spinning wheel; stagecoach; statue; steam engine;
submarine; suitcase; sundial; surfboard; sword; tapestry; taxi; teapot; telegraph; telescope;
tent; theatre; tiger; tollbooth; tombstone; tractor; trampoline; tram; treehouse; trombone; truck;
trumpet; tugboat; typewriter; umbrella; uniform; vault; vineyard; violin; volcano; wagon; wall;
watch; waterfall; well; whale; wheelchair; windmill; wine barrel; wristwatch; xylophone; yacht;
zeppelin; bakery oven; taxidermy owl; wedding dress; film reel; ice cream van; fishing trawler;
oil rig; cable car; ski lift; tea plantation; laundry line; skateboard; pawnshop; tattoo needle;
hearing aid; pocket knife; lunchbox; neon sign; vending machine; karaoke machine; bus ticket;
shoebox; radio mast; snowplough; lifeboat; pinball machine; hat stand; glass eye; carpet;
abacus; kimono; sari; turban; cowbell; hay cart; ice pick; rugby ball; cricket bat; racing pigeon;
mah-jong tiles; samovar; cigar box; tin soldier; weather vane; ship in a bottle""".replace("\n", " ").split("; ")

GHOST_SETTINGS = """a lighthouse; a boarding school; a railway station; a farmhouse; a mine; a theatre; a hospital;
a ship; a hotel; an apartment block; a village church; a motel; a factory; a mansion; a ferry;
a radio station; a ski lodge; a prison; a fairground; a cinema; a monastery; a forest cabin;
a river barge; a tea house; a museum; a department store; a military fort; a vineyard""".replace("\n", " ").split("; ")


def draw(kind, n, seed):
    rng = random.Random(seed)
    cards = []
    for i in range(n):
        card = {
            "genre": "ghost story" if kind == "ghost" else rng.choice(GENRES),
            "period": rng.choice(PERIODS),
            "place": rng.choice(PLACES),
            "tone": rng.choice(TONES),
            "opening": rng.choices(OPENINGS, OPENING_WEIGHTS)[0],
            "lead": rng.choice(LEADS),
            "ending": rng.choice(ENDINGS),
            "nouns": ", ".join(rng.sample(NOUNS, 3)),
            "words": rng.randint(120, 200),
        }
        if kind == "ghost":
            card["haunts"] = rng.choice(GHOST_SETTINGS)
        cards.append(card)
    return cards


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["plots", "ghost"])
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=26)
    ap.add_argument("--start", type=int, default=1, help="number of the first card")
    args = ap.parse_args()
    for i, card in enumerate(draw(args.kind, args.n, args.seed), args.start):
        print(f"{i}. " + " | ".join(f"{k}: {v}" for k, v in card.items()))


if __name__ == "__main__":
    main()
