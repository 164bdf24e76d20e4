import NIOHTTP1
import WeftOTLP

/// Error responses of the OTLP endpoint: a `google.rpc.Status` in the request's encoding.
package enum OTLPErrors {
    package static func response(_ status: HTTPResponseStatus, code: Int, _ message: String, contentType: String?, retryAfter: Int? = nil) -> HTTPResponse {
        let encoding = contentType.flatMap(OTLPEncoding.init(contentType:)) ?? .json
        var response = HTTPResponse(
            status: status,
            contentType: encoding.contentType,
            body: OTLPResponse.status(code: code, message: message, encoding: encoding)
        )
        if let retryAfter { response.headers.add(name: "retry-after", value: String(retryAfter)) }
        return response
    }
}
