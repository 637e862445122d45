// The one error type of Berth. Codes are the OCI distribution-spec codes; the table below is
// the only place that maps a code to an HTTP status (call sites never pick a status, except
// where the spec pairs a code with another status: `status` in the options).
// The spec says a /v2 error's code MUST be one of its fourteen (BLOB_UNKNOWN … TOOMANYREQUESTS):
// Distribution's extras (TAG_INVALID, RANGE_INVALID, PAGINATION_NUMBER_INVALID) are not used.
export const ErrorCodes = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNKNOWN: 500,
  UNAVAILABLE: 503,
  // Codes of the management API (/api/v1), never used under /v2.
  NOT_FOUND: 404,
  CONFLICT: 409,
  INVALID_FIELD: 400,
  /** well-formed request, content that cannot be processed (a layer that is no readable tar) */
  UNPROCESSABLE: 422,
} as const satisfies Record<string, number>

export type ErrorCode = keyof typeof ErrorCodes

export interface RegistryErrorOptions {
  detail?: unknown
  cause?: unknown
  headers?: Record<string, string>
  status?: number
}

export class RegistryError extends Error {
  readonly statusCode: number
  readonly detail: unknown
  readonly headers: Record<string, string>

  constructor(
    readonly code: ErrorCode,
    message: string,
    opts: RegistryErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'RegistryError'
    this.statusCode = opts.status ?? ErrorCodes[code]
    this.detail = opts.detail ?? null
    this.headers = opts.headers ?? {}
  }

  static blobUnknown(digest: string): RegistryError {
    return new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } })
  }
  static manifestUnknown(reference: string): RegistryError {
    return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { reference } })
  }
  static nameUnknown(name: string): RegistryError {
    return new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name } })
  }
  static uploadUnknown(id: string): RegistryError {
    return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { detail: { id } })
  }
  static digestInvalid(message: string, detail?: unknown): RegistryError {
    return new RegistryError('DIGEST_INVALID', message, { detail })
  }
  static manifestInvalid(message: string, detail?: unknown): RegistryError {
    return new RegistryError('MANIFEST_INVALID', message, { detail })
  }
  static denied(message: string, detail?: unknown): RegistryError {
    return new RegistryError('DENIED', message, { detail })
  }
  static notFound(what: string): RegistryError {
    return new RegistryError('NOT_FOUND', `${what} not found`)
  }
  static conflict(message: string): RegistryError {
    return new RegistryError('CONFLICT', message)
  }
  /** A request body field is missing or invalid; `field` names it. */
  static invalidField(field: string, message: string): RegistryError {
    return new RegistryError('INVALID_FIELD', `${field}: ${message}`, { detail: { field } })
  }
  static unsupported(message: string): RegistryError {
    return new RegistryError('UNSUPPORTED', message)
  }
  /**
   * An upload chunk that does not continue what the session holds: 416 with the Range header
   * telling the client what the server holds (distribution PatchBlobData), code BLOB_UPLOAD_INVALID.
   */
  static rangeInvalid(message: string, currentSize: number): RegistryError {
    const headers: Record<string, string> = { range: `0-${Math.max(currentSize - 1, 0)}` }
    return new RegistryError('BLOB_UPLOAD_INVALID', message, { detail: { size: currentSize }, headers, status: 416 })
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError
}
