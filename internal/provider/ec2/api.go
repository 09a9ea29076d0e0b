package ec2

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// api is the part of *ec2.Client the driver uses. It is also the list of
// EC2 actions package fake must model.
type api interface {
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	DescribeKeyPairs(context.Context, *ec2.DescribeKeyPairsInput, ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	ImportKeyPair(context.Context, *ec2.ImportKeyPairInput, ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error)
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
}

var _ api = (*ec2.Client)(nil)

// kindForCode maps EC2's own error codes (the <Code> of its XML error
// body) to the provider sentinels. Codes not listed fall back to the HTTP
// status (provider.KindForStatus).
func kindForCode(code string) error {
	switch code {
	case "AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch",
		"OptInRequired", "Blocked", "PendingVerification", "MissingAuthenticationToken":
		return provider.ErrAuth
	case "InstanceLimitExceeded", "VcpuLimitExceeded", "InsufficientInstanceCapacity",
		"ResourceLimitExceeded", "SecurityGroupLimitExceeded", "RulesPerSecurityGroupLimitExceeded",
		"KeyPairLimitExceeded", "InsufficientAddressCapacity", "MaxIOPSLimitExceeded", "VolumeLimitExceeded":
		return provider.ErrQuota
	case "InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidInstanceID.NotFound",
		"InvalidInstanceID.Malformed", "InvalidKeyPair.NotFound", "InvalidGroup.NotFound":
		return provider.ErrNotFound
	case "InvalidAMIID.Malformed", "InvalidParameterValue", "InvalidParameterCombination",
		"InvalidParameter", "MissingParameter", "Unsupported", "UnsupportedOperation",
		"InvalidInstanceType", "InvalidKeyPair.Format", "InvalidUserData.Malformed":
		return provider.ErrInvalid
	case "InvalidKeyPair.Duplicate", "InvalidGroup.Duplicate", "InvalidPermission.Duplicate":
		return provider.ErrExists
	case "RequestLimitExceeded", "Throttling", "ThrottlingException":
		return provider.ErrRateLimited
	}
	return nil
}

// errorCode returns EC2's error code in err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// apiError turns an SDK error into our error shapes: a *provider.APIError
// wrapping a sentinel when EC2 answered with an error body, otherwise the
// SDK's error wrapped with the provider name and what we were doing. SDK
// errors never contain credentials (the signature is not echoed), and EC2's
// messages do not either.
func apiError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		if errors.Is(err, errNotEC2Response) {
			return fmt.Errorf("ec2: %s: the API answered with something that is not an EC2 response (check endpoint): %w", op, err)
		}
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return fmt.Errorf("ec2: %s: cannot resolve the EC2 API host %s (check the region and endpoint settings): %w", op, dnsErr.Name, err)
		}
		return fmt.Errorf("ec2: %s: %w", op, err)
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ae.ErrorCode()
	kind := kindForCode(code)
	if kind == nil {
		kind = provider.KindForStatus(status)
	}
	msg := code + ": " + ae.ErrorMessage()
	switch kind {
	case provider.ErrAuth:
		msg += " (check username = access key ID and secret = secret access key in the provider section, or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)"
	case provider.ErrRateLimited:
		var me *retry.MaxAttemptsError
		if errors.As(err, &me) {
			msg += fmt.Sprintf(" (gave up after %d attempts; try again later)", me.Attempt)
		}
	case provider.ErrQuota:
		msg += " (raise the limit in the AWS console under Service Quotas, or pick a smaller size)"
	}
	return &provider.APIError{Provider: "ec2", Op: op, Status: status, Message: msg, Kind: kind}
}

// errNotEC2Response marks a 2xx answer that is not an EC2 XML document.
var errNotEC2Response = errors.New("response is not an EC2 XML document")

// responseCheck is a deserialize middleware that runs between the HTTP
// transport and the SDK's operation deserializer. The SDK treats an empty
// 2xx body, or XML with any root element, as an empty result: a proxy's
// HTML page or a truncated body would look like "no instances". We refuse
// any 2xx body whose root element is not <ActionResponse>, which is what
// EC2 always sends. No SDK option does this, hence the hand-written check.
type responseCheck struct{}

func (responseCheck) ID() string { return "toppcloudResponseCheck" }

func (responseCheck) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return out, md, nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return out, md, fmt.Errorf("read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if root := rootElement(body); !strings.HasSuffix(root, "Response") {
		snippet := string(body)
		if len(snippet) > 80 {
			snippet = snippet[:80] + "..."
		}
		return out, md, &smithy.DeserializationError{
			Err: fmt.Errorf("%w: HTTP %d, body starts %q", errNotEC2Response, resp.StatusCode, snippet),
		}
	}
	return out, md, nil
}

// rootElement returns the local name of the first XML element, or "".
func rootElement(body []byte) string {
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

// addResponseCheck installs responseCheck just inside the operation
// deserializer, so it sees the raw response first.
func addResponseCheck(stack *middleware.Stack) error {
	return stack.Deserialize.Insert(responseCheck{}, "OperationDeserializer", middleware.After)
}
