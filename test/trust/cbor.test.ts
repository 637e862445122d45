import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CborError, CborTag, decodeCbor, encodeCbor } from '../../src/trust/cbor.js'

// The CBOR codec behind COSE envelopes: RFC 8949 Appendix A's examples, and the malformed input a
// registry client could send, each refused with a CborError.

const hex = (h: string) => Buffer.from(h, 'hex')

describe('CBOR', () => {
  it('decodes the examples of RFC 8949 Appendix A', () => {
    const cases: [string, unknown][] = [
      ['00', 0],
      ['17', 23],
      ['1818', 24],
      ['1903e8', 1000],
      ['1a000f4240', 1000000],
      ['1b000000e8d4a51000', 1000000000000],
      ['1bffffffffffffffff', 18446744073709551615n],
      ['20', -1],
      ['3903e7', -1000],
      ['3bffffffffffffffff', -18446744073709551616n],
      ['f93c00', 1],
      ['f97bff', 65504],
      ['f9c400', -4],
      ['fa47c35000', 100000],
      ['fb3ff199999999999a', 1.1],
      ['f4', false],
      ['f5', true],
      ['f6', null],
      ['f7', undefined],
      ['4401020304', new Uint8Array([1, 2, 3, 4])],
      ['6449455446', 'IETF'],
      ['62c3bc', 'ü'],
      ['83010203', [1, 2, 3]],
      ['8301820203820405', [1, [2, 3], [4, 5]]],
      ['a201020304', new Map([[1, 2], [3, 4]])],
      ['a26161016162820203', new Map<string, unknown>([['a', 1], ['b', [2, 3]]])],
      ['c11a514b67b0', new CborTag(1, 1363896240)],
    ]
    for (const [h, value] of cases) assert.deepEqual(decodeCbor(hex(h)), value, h)
  })

  it('encodes deterministically what it decodes (integers, strings, arrays, maps, tags)', () => {
    for (const h of ['00', '1818', '1903e8', '1a000f4240', '1b000000e8d4a51000', '20', '3903e7', '3bffffffffffffffff', '4401020304', '62c3bc', '8301820203820405', 'a26161016162820203', 'c11a514b67b0', 'd28443a10126a0f640']) {
      assert.equal(encodeCbor(decodeCbor(hex(h))).toString('hex'), h)
    }
  })

  it('refuses malformed or unsupported input with a CborError', () => {
    const cases: [string, RegExp][] = [
      ['', /ends inside a data item/],
      ['0102', /1 bytes after the CBOR data item/],
      ['1a0001', /ends inside a data item/],
      ['5f42010243030405ff', /indefinite-length/],
      ['9f01ff', /indefinite-length/],
      ['5a7fffffff00', /string is longer than its input/],
      ['9b00000000ffffffff', /longer than its input/],
      ['a2010201 03'.replace(' ', ''), /duplicate CBOR map key 1/],
      ['a1820102 01'.replace(' ', ''), /map key is neither an integer nor a text string/],
      ['62c328', /not UTF-8/],
      ['1c', /reserved CBOR additional information 28/],
      ['f8ff', /unsupported CBOR simple value 24/],
      [`${'81'.repeat(20)}00`, /nested deeper than 16/],
    ]
    for (const [h, message] of cases) assert.throws(() => decodeCbor(hex(h)), (err: Error) => err instanceof CborError && message.test(err.message), h)
  })

  it('encodes only integers among numbers', () => {
    assert.throws(() => encodeCbor(1.5), CborError)
  })
})
