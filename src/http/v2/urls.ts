// Every Location header of the /v2 API is built here. Relative URLs by default (the spec allows
// them and every client follows them); absolute when http.baseUrl is configured.
export class UrlBuilder {
  constructor(private readonly baseUrl = '') {}

  blob(name: string, digest: string): string {
    return `${this.baseUrl}/v2/${name}/blobs/${digest}`
  }
  upload(name: string, id: string): string {
    return `${this.baseUrl}/v2/${name}/blobs/uploads/${id}`
  }
  manifest(name: string, reference: string): string {
    return `${this.baseUrl}/v2/${name}/manifests/${reference}`
  }
  /** The path part only: Link headers of paginated lists. */
  next(path: string, n: number, last: string): string {
    return `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`
  }
}
