# Exports what Copilot reads from the shell when deploying to one region (docs/deploy.md):
#   source scripts/deploy-env.sh <region>
# CHAT_DOMAIN (the gateway's aliases) and CHAT_CERTIFICATE_ARN (the environment's HTTPS
# listener), from the region's SSM parameters, so the manifests and the DNS addon read the
# same values.
if [ -z "${1:-}" ]; then
  echo "usage: source scripts/deploy-env.sh <region>" >&2
  return 2 2>/dev/null || exit 2
fi
_chat_param() {
  aws ssm get-parameter --region "$1" --name "$2" --query Parameter.Value --output text
}
CHAT_DOMAIN="$(_chat_param "$1" /connect-chat/dns/domain)" &&
  CHAT_CERTIFICATE_ARN="$(_chat_param "$1" /connect-chat/tls/certificate-arn)" &&
  export CHAT_DOMAIN CHAT_CERTIFICATE_ARN &&
  echo "$1: CHAT_DOMAIN=$CHAT_DOMAIN CHAT_CERTIFICATE_ARN=$CHAT_CERTIFICATE_ARN" ||
  echo "could not read /connect-chat/dns/domain or /connect-chat/tls/certificate-arn in $1 (docs/deploy.md, step 0)" >&2
unset -f _chat_param
