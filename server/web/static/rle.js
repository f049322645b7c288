// COCO run-length masks, as pycocotools writes them (see server/masks/rle_string.py):
// column-major runs alternating background / foreground, background first (a mask that
// starts with foreground starts with a 0 run). In the compressed string each count is
// packed 5 bits per character from '0' (48), low bits first, 0x20 = "more follows",
// 0x10 of the last character = negative; from the third count on it is a delta to the
// count two back.
"use strict";

function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// Calls visit(x, y) for every foreground pixel of an RLE {size: [h, w], counts}
// (counts: the compressed string, or the plain array of uncompressed RLE).
function rleForEach(rle, visit) {
  const h = rle.size[0];
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  let index = 0;
  for (let i = 0; i < counts.length; i += 1) {
    if (i % 2 === 1) {
      let x = (index / h) | 0;
      let y = index - x * h;
      for (let n = 0; n < counts[i]; n += 1) {
        visit(x, y);
        y += 1;
        if (y === h) {
          y = 0;
          x += 1;
        }
      }
    }
    index += counts[i];
  }
}

// The number of foreground pixels.
function rleArea(rle) {
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  let area = 0;
  for (let i = 1; i < counts.length; i += 2) area += counts[i];
  return area;
}

if (typeof module !== "undefined") module.exports = { rleCounts, rleForEach, rleArea };
