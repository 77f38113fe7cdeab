"""The English of the bot, in one place: every word list and pattern that reads a question or a sentence.

The models and BM25 know no grammar; these patterns say what a question's form asks for (a number
for "how many", a time for "when", a place for "where", a paragraph for "tell me about…") and which
sentences have that form. In the answer stage they are features the fitted ranker weighs
(ranking.FEATURES), not bonuses set by hand; conversation.py reads follow-ups with the word lists at
the end. A corpus in another language needs its own version of this module.

Each list is kept as it was measured; some overlap (the function words of conversation and of BM25's
question stopwords differ on purpose: the first decides whether a question stands alone, the second
what BM25 may ignore).
"""

from __future__ import annotations

import re

# What a question asks for, when its form says so: a number, a time, or a named kind of thing.
NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                    r"forty|fifty|hundred|thousand|million|billion|dozen|several)\b", re.I)
TIME = re.compile(r"(?<![\d,.])(?<!\d-)\b(?:1[0-9]{3}|20[0-9]{2})s?\b(?![,.]?\d)|\bago\b|\b(?:January|February|March|April|May|June|July|"
                  r"August|September|October|November|December|century|decade)\b", re.I)
FREQUENCY = re.compile(r"\b(?:(?:bi|semi-?)?annual(?:ly)?|bienni(?:al|ally)|daily|weekly|monthly|quarterly|yearly|"
                       r"every|once|twice|thrice|times (?:a|per|each)|per (?:year|month|week|day))\b", re.I)
ASKS_NUMBER = re.compile(r"\bhow (?:many|much)\b", re.I)
# What "how many" counts: the words up to the verb ("how many member parliaments does it have"), give or
# take a verb the list misses ("how many staff work at…": any of the words may be the counted one).
COUNTED = re.compile(r"\bhow many (?:(?:are|were|is|was)\s+)?((?:(?!(?:are|is|was|were|do|does|did|have|has|had|can|could|will|would|should|"
                     r"exist|exists|existed|there)\b)[^\W_][\w'-]*\s*){1,4})", re.I)
YEAR = re.compile(r"(?:1[5-9]\d\d|20\d\d)s?")  # "2009", "1990s": a time, not a count ("launched in 2009, trains teachers")
ASKS_FREQUENCY = re.compile(r"\bhow (?:often|frequently)\b", re.I)
ASKS_TIME = re.compile(r"^\W*when\b|\bhow old\b|\b(?:what|which) (?:year|date|month|day|decade|century)\b", re.I)
ASKS_PLACE = re.compile(r"^\W*where\b|\b(?:what|which) (?:country|city|town|place|location|region|continent)\b",
                        re.I)
PLACE = re.compile(r"\b(?:address|located|location|based|headquarter\w*|situated|seat|city|country)\b", re.I)
# Words that only frame a "where" question ("where is it based?"): the answer need not repeat them.
PLACE_FRAME = "based located situated headquartered seated"
ASKS_KIND = re.compile(r"\b(?:what|which) (?!(?:is|are|was|were|does|do|did|can|could|has|have|had|will|would|"
                       r"should|the|a|an|kind|type|sort|of|about|if|else)\b)([a-z]+)", re.I)
# "how often", "how old": the word after "how" names the kind of answer, not what it is about.
# Only these: in "explain how encryption works" the word after "how" is the subject.
ASKS_DEGREE = re.compile(r"\bhow (often|frequently|old|long|far|big|large|small|tall|high|wide|soon|early|late|"
                         r"recently)\b", re.I)
ASKS_DEFINITION = re.compile(
                             r"^\W*(?:(?:what|who)(?: exactly)? (?:is|are|was|were)|tell me about|describe|explain|what does) (.+?)(?: mean)?\W*$",
    re.I,
)
DEFINES = re.compile(r"\b(?:is|are|was|were)\s+(?:a|an|the|one)\b|,\s+(?:a|an)\s|\bmeans\b|\brefers to\b", re.I)
FIELD = re.compile(r"\W*([A-Z][\w'’ ()/&-]{0,40}?):\s")
# "Tell me about X", "What does X say about Y", "Give me an overview of …": the answer is a paragraph.
ASKS_BROAD = re.compile(
                        r"^\W*(?:(?:can you |could you |please )?(?:tell me(?: more)? about|describe|explain|summari[sz]e|outline)\b"
                        r"|(?:give (?:me )?)?an? (?:overview|summary|outline) of\b"
                        r"|what (?:does|do|did) .+? (?:say|do|does|offer|cover|provide) (?:about|on|for|in|regarding|with)\b"
                        r"|what (?:is|are) .+?(?:'s|’s) (?:approach|position|role|work|stance|policy|view)\b)",
    re.I,
)
# A follow-up of a few words with no question of its own ("And privacy?", "What about the hubs?") asks about a topic.
TOPIC_ONLY = re.compile(r"^\W*(?:and|also|what about|how about|and what about|and how about)\b(?!.*\b(?:when|where|who|"
                        r"how many|how much|what year|which)\b)", re.I)
# "When was it founded?", "What year did…": asks for a date in the past. ("When can I…" may ask for a
# condition, and "how long" for a duration.)
ASKS_DATE = re.compile(r"^\W*when (?:was|were|did)\b|\b(?:what|which|in which) (?:year|date|month|decade|century)\b",
                       re.I)


# Follow-ups (conversation.py): a pronoun or an ellipsis leans on the earlier question; small talk is not searched.
PRONOUNS = {"it", "its", "they", "them", "their", "theirs", "he", "him", "his", "she", "her", "there", "one", "ones"}
QUESTION_WORDS = {
    "what", "who", "whom", "whose", "which", "when", "where", "why", "how", "is", "are", "was", "were",
    "do", "does", "did", "can", "could", "should", "would", "will", "tell", "me", "about", "give",
    "show", "explain", "describe", "list", "name", "please", "and", "also", "so", "then", "what's",
}
FUNCTION_WORDS = QUESTION_WORDS | {
    "of", "on", "for", "in", "the", "a", "an", "to", "at", "by", "with", "from", "as", "that", "this", "these",
    "those", "be", "been", "has", "have", "had", "much", "many", "any", "some", "more", "i", "you", "we", "my",
    "based", "located", "known", "called", "mean", "means",
} | PRONOUNS
DEMONSTRATIVE_END = re.compile(r"\b(?:this|that|these|those)\W*$", re.I)
ELLIPSIS = re.compile(r"^\W*(?:and|also|what about|how about|same for|and what about|and how about)\b", re.I)
SMALLTALK = {
    "hi", "hello", "hey", "hiya", "good morning", "good afternoon", "good evening", "thanks", "thank you",
    "thank you very much", "thanks a lot", "many thanks", "thx", "ty", "cheers", "ok", "okay", "cool", "great",
    "nice", "perfect", "got it", "bye", "goodbye", "see you", "ok thanks", "okay thanks", "great thanks",
}


# Words that frame a question about the documents rather than name what is asked.
QUESTION_STOPWORDS = {
    "many", "much", "tell", "give", "please", "know", "like", "would", "could", "also", "us", "say", "says", "said",
    "saying", "mention", "mentions", "mentioned", "write", "writes", "written", "describe", "describes", "explain",
    "explains", "anything", "something", "more",
}
