/**
 * Names that came from elsewhere (a sharer's tree paths, a link's `dn=`, a decoded URL) made
 * safe to print on a terminal: every control character (C0, DEL, C1: a terminal acts on
 * escape sequences such as ESC [ or the single-byte CSI 0x9b) and every bidirectional
 * formatting character (U+202E and its kin reorder what is shown, so `gpj.exe` reads as
 * `exe.jpg`) becomes a visible `\xNN` or `\uNNNN` escape. Everything else is unchanged.
 */

/** C0 controls, DEL, C1 controls, line and paragraph separators, bidi marks and overrides. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/gu;

/** `name` with control and bidi characters escaped (module comment). */
export function printable(name: string): string {
  return name.replace(UNPRINTABLE, (char) => {
    const code = char.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
