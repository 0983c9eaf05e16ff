// Direct uploads: presign → PUT to the signed URL → available.
// `k6 run -e VUS=20 -e DURATION=30s k6/direct-upload.js`
import { check } from "k6";
import exec from "k6/execution";
import { directUpload, signup } from "./lib.js";

const SIZE = Number(__ENV.SIZE || 64 * 1024);

export const options = {
  scenarios: {
    upload: { executor: "constant-vus", vus: Number(__ENV.VUS || 20), duration: __ENV.DURATION || "30s" },
  },
  thresholds: {
    http_req_failed: ["rate<0.001"],
    http_req_duration: ["p(95)<100", "p(99)<250"],
    checks: ["rate>0.999"],
  },
};

const body = "x".repeat(SIZE);
let user = null;

export default function () {
  if (user === null) user = signup("direct");
  const id = directUpload(user.token, `direct-${exec.vu.idInTest}-${exec.scenario.iterationInTest}.bin`, body);
  check(id, { "available": (v) => v !== null });
}
