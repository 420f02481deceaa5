// What differs per model family, said once: how its head reads (the words for its predictions and its target),
// how its trace travels, which of the tour's panels it fills itself. Everything else in static/js asks a family
// (familyOf(card or trace)), never a card's kind; a new family is one entry here (and, if it brings a panel of its
// own, one in panels.js).
//
//   head       "tokens" (a next-token head), "classes" (a classifier), "values" (a regression head), "letters" (a decoder),
//              "ctc" (a speech model: CTC's posteriors over the alphabet and the blank), "words" (a caption model's
//              decoder, writing words while it looks at a picture)
//   binary     a traced input may travel as float32 records (the vocabulary or the classes name what is predicted)
//   batch      where a traced input travels as JSON, its step and grad frames to a message (1 unless said): a
//              series' 120 small frames each a message cost the server more than their numbers (a room of 200)
//   target     what the loss L is measured against, as the predictions panel's legend says it
//   fills      the tour's guest panels (tour-sequences.js) this family's own model fills on the scene's cursor
//   overNotes  the family a model of this kind belongs to when its vocabulary is notes
//   step       what one time step is, in the panels' titles ("units × notes", "the gates at this note")

const FAMILIES = {
  next_token: { head: "tokens", binary: (card) => Boolean(card?.vocab), target: "the target: the token that actually comes next", fills: [], overNotes: "melody", step: null },
  melody: { head: "tokens", binary: (card) => Boolean(card?.vocab), target: "the target: the token that actually comes next", fills: ["roll"], step: "note" },
  classify: { head: "classes", binary: () => true, target: "the target: the class the loss L is measured against", fills: [], step: null },
  series: { head: "values", binary: () => false, batch: 64, target: "", fills: ["forecast"], step: null },
  translate: { head: "letters", binary: () => false, target: "", fills: [], step: null },
  transcribe: { head: "ctc", binary: () => false, target: "", fills: [], step: null },
  caption: { head: "words", binary: () => false, target: "", fills: [], step: "word" },
};

/**
 * The family's name of a card or a trace: the server's (card.family, once the family registry sends it), else
 * read from the kind, a next-token model over notes being a melody model.
 */
export function familyName(x) {
  if (x?.family in FAMILIES) return x.family;
  const name = x?.kind ?? "next_token";
  return (x?.vocab_level === "note" && FAMILIES[name]?.overNotes) || name;
}

/** The family entry of a card or a trace (a next-token model when it names none). */
export const familyOf = (x) => FAMILIES[familyName(x)] ?? FAMILIES.next_token;

/** Does this card's own model fill the tour panel `key` (a melody model its roll, a series model its forecast)? */
export const fills = (card, key) => familyOf(card).fills.includes(key);
