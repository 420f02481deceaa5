// A media page's frame (speech, caption: templates/_media_page.html), on the page kit: the player and its
// controls, the family's panels (panels.js) for the body's card, every view fed from one push, which follows the
// cursor and the layout. Its own module, so that the pages that use only the kit (the lab) load no panels.

import { followCursor, followLayout, pusher } from "./pagekit.js";
import { mountPage } from "./panels.js";
import { Player } from "./player.js";
import { Controls } from "./views/controls.js";

const $ = (id) => document.getElementById(id);

/** The frame mounted, the player at `speed` steps a second: what the page runs its input through, { player, push }. */
export function mountMediaPage(state, { speed }) {
  const player = new Player({ speed });
  const controls = new Controls($("player"), player);
  const { model: id, cell, kind } = document.body.dataset;
  const panels = mountPage({ card: { id, cell, kind } });
  const push = pusher([controls, ...Object.values(panels)]);
  followCursor(state, push);
  followLayout(state, push, panels.unrolled);
  return { player, push };
}
