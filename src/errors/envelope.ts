import type { RegistryError } from './registry-error.js'

export interface OciErrorBody {
  errors: { code: string; message: string; detail: unknown }[]
}

/** The distribution-spec error body: {"errors":[{code,message,detail}]}. */
export function toOciEnvelope(err: RegistryError): OciErrorBody {
  return { errors: [{ code: err.code, message: err.message, detail: err.detail }] }
}
