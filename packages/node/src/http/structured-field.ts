/**
 * Structured Field Dictionaries (RFC 8941), the syntax of `Repr-Digest` and `Content-Digest`
 * (RFC 9530 sections 2 and 3): `sha-256=:BASE64:, sha-512=:BASE64:`.
 *
 * Theory of operation: `parseDictionary` implements the parsing algorithm of RFC 8941 section
 * 4.2 over the whole value, so a value that is not a valid Dictionary is refused as a whole
 * (section 4.2: "fail parsing" means the field is ignored), never half-read. It reads untrusted
 * text from the network and never throws: failure is `undefined`. A duplicate key overwrites the
 * earlier value in place (section 4.2.2). `serializeDictionary` is section 4.1's algorithm;
 * parsing its output gives the same dictionary back (a property test checks this).
 *
 * Only RFC 8941's types are read. RFC 9651 later added Dates (`@`) and Display Strings (`%"`);
 * RFC 9530 is defined over RFC 8941, so a field using them is refused, which for a digest
 * field means "no digest stated", the safe direction.
 */

/** A Bare Item (RFC 8941 section 3.3). */
export type BareItem =
  | { readonly type: 'integer'; readonly value: number }
  | { readonly type: 'decimal'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'token'; readonly value: string }
  | { readonly type: 'byte-sequence'; readonly value: Uint8Array }
  | { readonly type: 'boolean'; readonly value: boolean };

/** Parameters: an ordered map from key to Bare Item. */
export type Parameters = ReadonlyMap<string, BareItem>;

/** A dictionary member: an Item or an Inner List, each with parameters. */
export type Member =
  | { readonly kind: 'item'; readonly value: BareItem; readonly parameters: Parameters }
  | {
      readonly kind: 'inner-list';
      readonly items: readonly {
        readonly value: BareItem;
        readonly parameters: Parameters;
      }[];
      readonly parameters: Parameters;
    };

/** An ordered map from key to member. */
export type Dictionary = ReadonlyMap<string, Member>;

/** Thrown inside the parser only; `parseDictionary` turns it into `undefined`. */
class ParseFailure extends Error {}

const LCALPHA = /[a-z]/;
const KEY_CHAR = /[a-z0-9_\-.*]/;
const ALPHA = /[A-Za-z]/;
const DIGIT = /[0-9]/;
/** tchar (RFC 9110 section 5.6.2) plus ":" and "/" (RFC 8941 section 3.3.4). */
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/;
const BASE64_CHAR = /[A-Za-z0-9+/=]/;

class Parser {
  private position = 0;

  constructor(private readonly input: string) {}

  dictionary(): Dictionary {
    this.skipSpaces();
    const dictionary = new Map<string, Member>();
    while (!this.atEnd()) {
      const key = this.key();
      let member: Member;
      if (this.peek() === '=') {
        this.position++;
        member = this.itemOrInnerList();
      } else {
        member = {
          kind: 'item',
          value: { type: 'boolean', value: true },
          parameters: this.parameters(),
        };
      }
      dictionary.set(key, member);
      this.skipOptionalWhitespace();
      if (this.atEnd()) break;
      if (this.next() !== ',') throw new ParseFailure();
      this.skipOptionalWhitespace();
      if (this.atEnd()) throw new ParseFailure(); // a trailing comma
    }
    this.skipSpaces();
    if (!this.atEnd()) throw new ParseFailure();
    return dictionary;
  }

  private itemOrInnerList(): Member {
    if (this.peek() !== '(') {
      const value = this.bareItem();
      return { kind: 'item', value, parameters: this.parameters() };
    }
    this.position++;
    const items: { value: BareItem; parameters: Parameters }[] = [];
    for (;;) {
      this.skipSpaces();
      if (this.peek() === ')') {
        this.position++;
        return { kind: 'inner-list', items, parameters: this.parameters() };
      }
      const value = this.bareItem();
      items.push({ value, parameters: this.parameters() });
      const after = this.peek();
      if (after !== ' ' && after !== ')') throw new ParseFailure();
    }
  }

  private parameters(): Parameters {
    const parameters = new Map<string, BareItem>();
    while (this.peek() === ';') {
      this.position++;
      this.skipSpaces();
      const key = this.key();
      let value: BareItem = { type: 'boolean', value: true };
      if (this.peek() === '=') {
        this.position++;
        value = this.bareItem();
      }
      parameters.set(key, value);
    }
    return parameters;
  }

  private key(): string {
    const first = this.peek();
    if (first === undefined || !(LCALPHA.test(first) || first === '*')) throw new ParseFailure();
    const start = this.position;
    while (this.peekMatches(KEY_CHAR)) this.position++;
    return this.input.slice(start, this.position);
  }

  private bareItem(): BareItem {
    const first = this.peek();
    if (first === undefined) throw new ParseFailure();
    if (first === '-' || DIGIT.test(first)) return this.number();
    if (first === '"') return this.string();
    if (first === '*' || ALPHA.test(first)) return this.token();
    if (first === ':') return this.byteSequence();
    if (first === '?') return this.boolean();
    throw new ParseFailure();
  }

  /** RFC 8941 section 4.2.4. */
  private number(): BareItem {
    let sign = 1;
    if (this.peek() === '-') {
      this.position++;
      sign = -1;
    }
    if (!this.peekMatches(DIGIT)) throw new ParseFailure();
    const start = this.position;
    let decimal = false;
    while (!this.atEnd()) {
      const char = this.peek() ?? '';
      if (DIGIT.test(char)) this.position++;
      else if (!decimal && char === '.') {
        if (this.position - start > 12) throw new ParseFailure();
        decimal = true;
        this.position++;
      } else break;
      const length = this.position - start;
      if ((!decimal && length > 15) || (decimal && length > 16)) throw new ParseFailure();
    }
    const text = this.input.slice(start, this.position);
    if (!decimal) return { type: 'integer', value: sign * Number(text) };
    if (text.endsWith('.')) throw new ParseFailure();
    const fraction = text.length - text.indexOf('.') - 1;
    if (fraction > 3) throw new ParseFailure();
    return { type: 'decimal', value: sign * Number(text) };
  }

  /** RFC 8941 section 4.2.5. */
  private string(): BareItem {
    this.position++;
    let value = '';
    for (;;) {
      const char = this.next();
      if (char === undefined) throw new ParseFailure();
      if (char === '\\') {
        const escaped = this.next();
        if (escaped !== '"' && escaped !== '\\') throw new ParseFailure();
        value += escaped;
      } else if (char === '"') {
        return { type: 'string', value };
      } else {
        const code = char.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) throw new ParseFailure();
        value += char;
      }
    }
  }

  /** RFC 8941 section 4.2.6. */
  private token(): BareItem {
    const start = this.position;
    this.position++;
    while (this.peekMatches(TOKEN_CHAR)) this.position++;
    return { type: 'token', value: this.input.slice(start, this.position) };
  }

  /** RFC 8941 section 4.2.7: padding is not required and pad bits are not checked. */
  private byteSequence(): BareItem {
    this.position++;
    const start = this.position;
    while (this.peekMatches(BASE64_CHAR)) this.position++;
    if (this.next() !== ':') throw new ParseFailure();
    const text = this.input.slice(start, this.position - 1);
    return { type: 'byte-sequence', value: new Uint8Array(Buffer.from(text, 'base64')) };
  }

  /** RFC 8941 section 4.2.8. */
  private boolean(): BareItem {
    this.position++;
    const char = this.next();
    if (char === '1') return { type: 'boolean', value: true };
    if (char === '0') return { type: 'boolean', value: false };
    throw new ParseFailure();
  }

  private peek(): string | undefined {
    return this.input[this.position];
  }

  private peekMatches(pattern: RegExp): boolean {
    const char = this.input[this.position];
    return char !== undefined && pattern.test(char);
  }

  private next(): string | undefined {
    return this.input[this.position++];
  }

  private atEnd(): boolean {
    return this.position >= this.input.length;
  }

  private skipSpaces(): void {
    while (this.peek() === ' ') this.position++;
  }

  private skipOptionalWhitespace(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.position++;
  }
}

/**
 * Parses a Dictionary field value (RFC 8941 section 4.2); undefined when absent or invalid.
 * @example parseDictionary('sha-256=:AAAA:')?.get('sha-256') // { kind: 'item', value: { type: 'byte-sequence', ... } }
 */
export function parseDictionary(value: string | undefined): Dictionary | undefined {
  if (value === undefined) return undefined;
  try {
    return new Parser(value).dictionary();
  } catch (error) {
    if (error instanceof ParseFailure) return undefined;
    throw error;
  }
}

/**
 * Serializes a Dictionary (RFC 8941 section 4.1.2).
 * @throws RangeError if a key, number, string or token is outside what RFC 8941 can carry.
 */
export function serializeDictionary(dictionary: Dictionary): string {
  const members: string[] = [];
  for (const [key, member] of dictionary) {
    const isTrue = member.kind === 'item' && member.value.type === 'boolean' && member.value.value;
    let text = serializeKey(key);
    if (isTrue) text += serializeParameters(member.parameters);
    else if (member.kind === 'item') text += `=${serializeItem(member)}`;
    else {
      const items = member.items.map(serializeItem).join(' ');
      text += `=(${items})${serializeParameters(member.parameters)}`;
    }
    members.push(text);
  }
  return members.join(', ');
}

function serializeItem(item: { value: BareItem; parameters: Parameters }): string {
  return serializeBareItem(item.value) + serializeParameters(item.parameters);
}

function serializeParameters(parameters: Parameters): string {
  let text = '';
  for (const [key, value] of parameters) {
    text += `;${serializeKey(key)}`;
    if (!(value.type === 'boolean' && value.value)) text += `=${serializeBareItem(value)}`;
  }
  return text;
}

function serializeKey(key: string): string {
  if (!/^[a-z*][a-z0-9_\-.*]*$/.test(key)) throw new RangeError(`key: not a valid key: ${key}`);
  return key;
}

function serializeBareItem(item: BareItem): string {
  switch (item.type) {
    case 'integer':
      if (!Number.isInteger(item.value) || Math.abs(item.value) > 999_999_999_999_999) {
        throw new RangeError(`integer: out of range: ${item.value}`);
      }
      return String(item.value);
    case 'decimal': {
      const rounded = Math.round(item.value * 1000) / 1000;
      if (!Number.isFinite(rounded) || Math.abs(Math.trunc(rounded)) > 999_999_999_999) {
        throw new RangeError(`decimal: out of range: ${item.value}`);
      }
      const text = rounded.toFixed(3).replace(/0+$/, '');
      return text.endsWith('.') ? `${text}0` : text;
    }
    case 'string':
      if (!/^[\x20-\x7e]*$/.test(item.value)) {
        throw new RangeError('string: only printable ASCII can be serialized');
      }
      return `"${item.value.replace(/[\\"]/g, (char) => `\\${char}`)}"`;
    case 'token':
      if (!/^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/.test(item.value)) {
        throw new RangeError(`token: not a valid token: ${item.value}`);
      }
      return item.value;
    case 'byte-sequence':
      return `:${Buffer.from(item.value).toString('base64')}:`;
    case 'boolean':
      return item.value ? '?1' : '?0';
  }
}
