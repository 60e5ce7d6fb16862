// EIP-3009's typed data: what a payer (or the platform treasury, paying out) signs as a
// TransferWithAuthorization, and what a facilitator checks. One definition for the payout
// job, the local chain tooling and the tests.

export const TRANSFER_WITH_AUTHORIZATION = {
  TransferWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
};
