// COCO run-length masks, as pycocotools writes them: column-major runs (background first),
// each count a delta to the count two back, packed 5 bits per character from '0' (48).
"use strict";

function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0, k = 0, more = true;
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

// Calls visit(x, y) for every foreground pixel of an RLE {size: [h, w], counts}.
function rleForEach(rle, visit) {
  const h = rle.size[0];
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  let index = 0;
  for (let i = 0; i < counts.length; i += 1) {
    if (i % 2 === 1) {
      for (let j = index; j < index + counts[i]; j += 1) {
        const x = (j / h) | 0;
        visit(x, j - x * h);
      }
    }
    index += counts[i];
  }
}

if (typeof module !== "undefined") module.exports = { rleCounts, rleForEach };
