import { createHash } from "node:crypto";
import type { PngSize } from "./png-encoder.js";
import { encodePng } from "./png-encoder.js";

// Content rules of the simulator's images, shared by the routes and by tests that predict their bytes:
// - a generated image is a vertical gradient between two colours taken from sha256("gen", prompt, index);
// - an edited image is the same kind of gradient from sha256("edit", prompt, index, each input image's sha256), and,
//   when a mask was sent, its middle (the centre half in each direction) is painted a colour taken from the mask's
//   sha256, so that changing the mask changes the output;
// - partial images (streaming) paint the first share of the rows and leave the rest PARTIAL_GREY.

/** PARTIAL_GREY fills the rows a partial image has not painted yet. */
const PARTIAL_GREY: Buffer = Buffer.from([0x80, 0x80, 0x80]);

/** ImagePaint is what an image is drawn from. */
export interface ImagePaint {
  readonly top: Buffer;
  readonly bottom: Buffer;
  /** patch is the colour of the centre, present for edits with a mask. */
  readonly patch: Buffer | undefined;
}

/** EditSources are the inputs an edit's output depends on, as sha256 digests. */
export interface EditSources {
  readonly prompt: string;
  readonly imageDigests: readonly Buffer[];
  readonly maskDigest: Buffer | undefined;
}

/** generationPaint derives the colours of generated image index for prompt. */
export function generationPaint(prompt: string, index: number): ImagePaint {
  const digest = createHash("sha256").update(`gen\0${prompt}\0${index}`).digest();
  return { top: digest.subarray(0, 3), bottom: digest.subarray(3, 6), patch: undefined };
}

/** editPaint derives the colours of edited image index from the prompt, the input images and the mask. */
export function editPaint(sources: EditSources, index: number): ImagePaint {
  const hash = createHash("sha256").update(`edit\0${sources.prompt}\0${index}`);
  for (const digest of sources.imageDigests) hash.update(digest);
  const digest = hash.digest();
  const patch =
    sources.maskDigest === undefined ? undefined : createHash("sha256").update("mask\0").update(sources.maskDigest).digest().subarray(0, 3);
  return { top: digest.subarray(0, 3), bottom: digest.subarray(3, 6), patch };
}

/**
 * renderPng draws paint at size as a PNG; progress (0..1] is the share of rows painted, below 1 for partial images.
 */
export function renderPng(paint: ImagePaint, size: PngSize, progress = 1): Buffer {
  const { width, height } = size;
  const paintedRows = Math.round(progress * height);
  const color = Buffer.alloc(3);
  const patchTop = Math.floor(height / 4);
  const patchBottom = Math.ceil((3 * height) / 4);
  const patchLeft = Math.floor(width / 4) * 3;
  const patchRight = Math.ceil((3 * width) / 4) * 3;
  return encodePng(width, height, (y, rgb) => {
    if (y >= paintedRows) {
      rgb.fill(PARTIAL_GREY);
      return;
    }
    const share = height === 1 ? 0 : y / (height - 1);
    for (let channel = 0; channel < 3; channel++) {
      const from = paint.top[channel] ?? 0;
      color[channel] = Math.round(from + ((paint.bottom[channel] ?? 0) - from) * share);
    }
    rgb.fill(color);
    if (paint.patch !== undefined && y >= patchTop && y < patchBottom && patchRight > patchLeft) {
      rgb.fill(paint.patch, patchLeft, patchRight);
    }
  });
}

/** expectedGeneratedPng is the exact PNG the simulator generates for prompt at size, image index of n. */
export function expectedGeneratedPng(prompt: string, size: PngSize, index = 0): Buffer {
  return renderPng(generationPaint(prompt, index), size);
}

/** expectedEditedPng is the exact PNG the simulator answers to an edit of images (with mask) for prompt at size. */
export function expectedEditedPng(
  edit: { readonly prompt: string; readonly images: readonly Uint8Array[]; readonly mask?: Uint8Array },
  size: PngSize,
  index = 0,
): Buffer {
  const sources: EditSources = {
    prompt: edit.prompt,
    imageDigests: edit.images.map(sha256),
    maskDigest: edit.mask === undefined ? undefined : sha256(edit.mask),
  };
  return renderPng(editPaint(sources, index), size);
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest();
}
