package s3

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StartUpload starts a multipart upload of key and leaves it unfinished,
// as a writer that crashed does; it returns the upload id.
func (b *Backend) StartUpload(ctx context.Context, key string) (string, error) {
	k, err := b.key(key)
	if err != nil {
		return "", err
	}
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &k})
	if err != nil {
		return "", err
	}
	return aws.ToString(up.UploadId), nil
}
