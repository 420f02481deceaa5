// What differs per recurrent cell, said once, for the views that name its parts (the unrolled network's arrow
// from one step to the next). torch.nn's three carry the state through the shared matrix W_hh; the linear
// recurrences of 2023–2025 have none: minGRU's and minLSTM's h_{t−1} is scaled by a gate read from x_t alone, and
// S6's state decays by Ā_t = exp(Δ_t A). A new cell is one entry here (celldiagram.js draws its parts).
//
//   recurrence  what the arrow h_{t−1} → h_t is labelled with: what multiplies the state on its way

export const CELLS = {
  rnn: { recurrence: "W_hh" },
  lstm: { recurrence: "W_hh" },
  gru: { recurrence: "W_hh" },
  mingru: { recurrence: "(1−zₜ)⊙" },
  minlstm: { recurrence: "f′ₜ⊙" },
  s6: { recurrence: "Āₜ" },
};

/** The description of a card's or a trace's cell (torch.nn's RNN's for a cell it does not know). */
export const cellOf = (x) => CELLS[x?.cell] ?? CELLS.rnn;
